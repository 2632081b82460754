"""Replay: today's ComplaintWorkflow code must reproduce the histories of complaints it ran.

A complaint stays open for days (the 24-hour follow-up, three business days for an answer, a
supervisor), so a deployment always meets complaints opened by the code before it. Same
guards as ``test_replay.py`` (read its docstring for when and how to record again):
``REPLAY_RECORD=1 .venv/bin/pytest tests/test_complaints_replay.py -k fresh``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from starter import decide, start_case
from tests.case_helpers import SATURDAY, move_to, timers_started
from tests.complaint_helpers import complaint, status_of
from tests.conftest import Cases, Shop
from tests.recorded_histories import ROOT, Shelf
from workflows.complaint_models import ComplaintRequest
from workflows.complaints import ComplaintWorkflow
from workflows.models import CaseStatus, Decision, DecisionKind

SHELF = Shelf(ROOT / "complaints", ComplaintWorkflow)

Scenario = Callable[[WorkflowEnvironment, Client, Cases, Shop], Awaitable[WorkflowHandle[Any, Any]]]


async def start(cases: Cases, request: ComplaintRequest) -> WorkflowHandle[Any, Any]:
    return await cases.start(start_case, request)


async def followed_up(
    env: WorkflowEnvironment, client: Client, handle: WorkflowHandle[Any, Any]
) -> None:
    await timers_started(handle)
    await env.sleep(timedelta(hours=24, minutes=1))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)


async def quality_with_replacement(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Replacement placed, QA's findings (and a malformed one), follow-up, satisfied."""
    handle = await start(cases, complaint("quality", "replacement"))
    await timers_started(handle)
    await handle.signal("qa_findings", {"lot_affected": "perhaps"})
    await handle.signal("qa_findings", {"event_id": "qa-1", "root_cause": "cold chain"})
    await followed_up(env, client, handle)
    await handle.signal("customer_response", {"event_id": "r-1", "satisfied": True})
    return handle


async def medical_out_of_hours(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Saturday: Food Safety, the CS manager and 911; not satisfied, a supervisor, satisfied."""
    await move_to(env, SATURDAY, 10)
    handle = await start(cases, complaint("medical"))
    await followed_up(env, client, handle)
    await handle.signal(
        "customer_response", {"event_id": "r-1", "satisfied": False, "comment": "still ill"}
    )
    await status_of(client, handle.id, CaseStatus.ESCALATED)
    await handle.signal("supervisor_action", {"event_id": "s-1", "action": "called the customer"})
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    await handle.signal("customer_response", {"event_id": "r-2", "satisfied": True})
    return handle


async def settlement_over_1000_approved(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """1200.00 back: the gate, a manager approves, paid; then no answer."""
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    shop.add_order(order_id, "1500.00")
    handle = await start(cases, complaint("quality", "refund", "1200.00", order_id=order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE))
    return handle


async def no_response(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    return await start(cases, complaint("food_safety"))


SCENARIOS: dict[str, tuple[Scenario, CaseStatus]] = {
    "complaint_quality_with_replacement": (quality_with_replacement, CaseStatus.CLOSED),
    "complaint_medical_out_of_hours": (medical_out_of_hours, CaseStatus.CLOSED),
    "complaint_settlement_over_1000_approved": (
        settlement_over_1000_approved,
        CaseStatus.CLOSED_NO_RESPONSE,
    ),
    "complaint_no_response": (no_response, CaseStatus.CLOSED_NO_RESPONSE),
    # Recorded with SLA clocks (docs/sla-clocks.md): the follow-up promise, the callback and
    # the customer's answer (twice, after a supervisor); a settlement's approval clocks.
    "complaint_sla_clocks_medical_out_of_hours": (medical_out_of_hours, CaseStatus.CLOSED),
    "complaint_sla_clocks_settlement_over_1000_approved": (
        settlement_over_1000_approved,
        CaseStatus.CLOSED_NO_RESPONSE,
    ),
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
