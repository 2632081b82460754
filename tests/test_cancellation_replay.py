"""Replay: today's CancellationWorkflow code must reproduce the histories of cancellations it
ran. A cancellation waits days (a manager, the customer's answer to a return offer), so a
deployment meets cancellations opened by the code before it. Same guards as
``test_replay.py`` (read its docstring for when and how to record again):
``REPLAY_RECORD=1 .venv/bin/pytest tests/test_cancellation_replay.py -k fresh``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from starter import choose_store_credit, decide
from tests.cancellation_helpers import (
    an_order,
    cancellation,
    deliver_order,
    request_return,
    ship,
    start,
    status_of,
)
from tests.case_helpers import TUESDAY, move_to
from tests.conftest import Cases, Shop
from tests.recorded_histories import ROOT, Shelf
from workflows.cancellation import CancellationWorkflow
from workflows.models import CaseStatus, Decision, DecisionKind, StoreCreditChoice

SHELF = Shelf(ROOT / "cancellation", CancellationWorkflow)

Scenario = Callable[[WorkflowEnvironment, Client, Cases, Shop], Awaitable[WorkflowHandle[Any, Any]]]


async def cancelled_and_refunded(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Over 500.00: held, store credit chosen, a manager approves, cancelled, refunded."""
    await move_to(env, TUESDAY, 10)
    handle = await start(cases, cancellation(an_order(shop, big=True)))
    await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await choose_store_credit(client, handle.id, StoreCreditChoice(event_id="sc-1"))
    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE))
    return handle


async def converted_to_return(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Delivered already: a return offered, requested, opened as a linked case."""
    now = await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    deliver_order(shop, order_id, now - timedelta(days=1))
    handle = await start(cases, cancellation(order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    await request_return(client, handle.id)
    return handle


async def closed_without_answer(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Shipped: a return offered, no answer within CANCEL_OFFER_WAIT."""
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    ship(shop, order_id)
    handle = await start(cases, cancellation(order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    return handle


SCENARIOS: dict[str, tuple[Scenario, CaseStatus]] = {
    "cancelled_and_refunded": (cancelled_and_refunded, CaseStatus.CANCELLED),
    "converted_to_return": (converted_to_return, CaseStatus.CONVERTED_TO_RETURN),
    "closed_without_answer": (closed_without_answer, CaseStatus.CLOSED),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_a_fresh_history_replays(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop, scenario: str
) -> None:
    run, final = SCENARIOS[scenario]
    handle = await run(env, client, cases, shop)
    await SHELF.check_fresh(scenario, handle, final)


def test_every_scenario_has_a_recorded_history() -> None:
    assert {path.stem for path in SHELF.recorded()} == set(SCENARIOS)


@pytest.mark.parametrize("path", SHELF.recorded(), ids=lambda path: path.stem)
async def test_a_recorded_history_replays(path: Path) -> None:
    result = await SHELF.replay(SHELF.load(path))

    assert result.replay_failure is None
