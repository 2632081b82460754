"""Replay: today's OrderChangeWorkflow code must reproduce the histories of changes it ran.

An order change waits up to CHANGE_ACCEPT_WITHIN business hours for the customer (a weekend
in between) and days for a manager, so a deployment meets changes opened by the code before
it. Same guards as ``test_replay.py`` (read its docstring for when and how to record again):
``REPLAY_RECORD=1 .venv/bin/pytest tests/test_order_change_replay.py -k fresh``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from starter import start_case
from tests.case_helpers import TUESDAY, move_to
from tests.conftest import Cases, Shop
from tests.order_change_helpers import NEW_ADDRESS, accept, change, processing_order, status_of
from tests.recorded_histories import ROOT, Shelf
from workflows.models import CaseStatus
from workflows.order_change import OrderChangeWorkflow

SHELF = Shelf(ROOT / "order_change", OrderChangeWorkflow)

Scenario = Callable[[WorkflowEnvironment, Client, Cases, Shop], Awaitable[WorkflowHandle[Any, Any]]]


async def quoted(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    await move_to(env, TUESDAY, 10)
    request = change(processing_order(shop), "quantity", sku="ELK-SAUSAGE", quantity=6)
    handle = await cases.start(start_case, request)
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    return handle


async def quantity_increase_charged(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Quoted, accepted (and the acceptance repeated), charged, applied, confirmed."""
    handle = await quoted(env, client, cases, shop)
    await accept(client, handle.id)
    await accept(client, handle.id)
    return handle


async def address_changed(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Nothing to pay or accept: applied at once."""
    await move_to(env, TUESDAY, 10)
    request = change(processing_order(shop), "address", address=NEW_ADDRESS)
    return await cases.start(start_case, request)


async def quote_expired(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """No answer within the eight business hours: the order stays as it is."""
    handle = await quoted(env, client, cases, shop)
    await env.sleep(timedelta(hours=8, minutes=1))
    return handle


SCENARIOS: dict[str, tuple[Scenario, CaseStatus]] = {
    "quantity_increase_charged": (quantity_increase_charged, CaseStatus.COMPLETED),
    "address_changed": (address_changed, CaseStatus.COMPLETED),
    "quote_expired": (quote_expired, CaseStatus.DECLINED),
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
