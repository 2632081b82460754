"""Replay: today's RushOrderWorkflow code must reproduce the histories of rush orders it ran.

A rush order stays open for days (the promised day, then a check every business day while
late), so a deployment always meets rush orders opened by the code before it. Same guards as
``test_replay.py`` (read its docstring for when and how to record again):
``REPLAY_RECORD=1 .venv/bin/pytest tests/test_rush_replay.py -k fresh``.
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
from tests.case_helpers import TUESDAY, move_to, timers_started
from tests.conftest import Cases, Shop
from tests.recorded_histories import ROOT, Shelf
from tests.rush_helpers import accept, rush, rush_state, status_of, stocked_order
from workflows.models import CaseStatus
from workflows.rush_orders import RushOrderWorkflow

SHELF = Shelf(ROOT / "rush_orders", RushOrderWorkflow)

Scenario = Callable[[WorkflowEnvironment, Client, Cases, Shop], Awaitable[WorkflowHandle[Any, Any]]]


async def quoted(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    await move_to(env, TUESDAY, 10)
    handle = await cases.start(start_case, rush(stocked_order(shop)))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    await timers_started(handle)  # the acceptance window: the quote is out, the case waits
    return handle


async def accepted_and_delivered(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Accepted (and a repeated acceptance), charged, flagged; the carrier's delivered event."""
    handle = await quoted(env, client, cases, shop)
    await accept(client, handle.id)
    await accept(client, handle.id)
    await status_of(client, handle.id, CaseStatus.PRIORITY)
    await timers_started(handle, 2)  # the quote's window, then the ship cut-off
    await handle.signal("delivered", {"event_id": "dlv-1", "tracking_number": "1Z42"})
    return handle


async def declined_by_timeout(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """No answer within the two business hours: the order ships as standard."""
    handle = await quoted(env, client, cases, shop)
    await env.sleep(timedelta(hours=2, minutes=1))
    return handle


async def late_with_fee_refund(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Missed promise: investigation, the fee refunded, a redelivery, escalation, delivered."""
    handle = await quoted(env, client, cases, shop)
    await accept(client, handle.id)
    await status_of(client, handle.id, CaseStatus.PRIORITY)
    await env.sleep(timedelta(days=1, hours=12))
    await rush_state(client, handle.id, lambda s: s.fee_refunded)
    await handle.signal("delivery_attempted", {"event_id": "att-1"})
    await rush_state(client, handle.id, lambda s: s.redeliveries == 1)
    await env.sleep(timedelta(days=2))
    await rush_state(client, handle.id, lambda s: s.escalated)
    await handle.signal("delivered", {"event_id": "dlv-late"})
    return handle


SCENARIOS: dict[str, tuple[Scenario, CaseStatus]] = {
    "rush_accepted_and_delivered": (accepted_and_delivered, CaseStatus.COMPLETED),
    "rush_declined_by_timeout": (declined_by_timeout, CaseStatus.DECLINED),
    "rush_late_with_fee_refund": (late_with_fee_refund, CaseStatus.COMPLETED),
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
