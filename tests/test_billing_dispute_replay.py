"""Replay: today's BillingDisputeWorkflow code must reproduce the histories of disputes it ran.

A dispute waits for people (an agent, Accounting, a manager) for days, so a deployment always
meets disputes opened by the code before it. Same guards as ``test_replay.py`` (read its
docstring for when and how to record again):
``REPLAY_RECORD=1 .venv/bin/pytest tests/test_billing_dispute_replay.py -k fresh``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from starter import start_case
from tests.billing_dispute_helpers import (
    answer,
    dispute,
    dispute_state,
    disputed_order,
    escalate,
    invoiced,
    resolution,
    resolve,
    status_of,
)
from tests.case_helpers import TUESDAY, move_to
from tests.conftest import Cases, Shop
from tests.recorded_histories import ROOT, Shelf
from workflows.billing_dispute import BillingDisputeWorkflow
from workflows.models import CaseStatus

SHELF = Shelf(ROOT / "billing_dispute", BillingDisputeWorkflow)

Scenario = Callable[[WorkflowEnvironment, Client, Cases, Shop], Awaitable[WorkflowHandle[Any, Any]]]


async def invoiced_case(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    await move_to(env, TUESDAY, 10)
    handle = await cases.start(start_case, dispute(disputed_order(shop)))
    await dispute_state(client, handle.id, invoiced)
    return handle


async def resolved_by_agent_refund(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """An agent's refund within authority (and the same resolution again): paid, noted."""
    handle = await invoiced_case(env, client, cases, shop)
    await resolve(client, handle.id, resolution("refund", "55.00"))
    await resolve(client, handle.id, resolution("refund", "55.00"))
    return handle


async def escalated_answered_by_accounting(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Escalated to Accounting, which answers with a store credit."""
    handle = await invoiced_case(env, client, cases, shop)
    await escalate(client, handle.id)
    await status_of(client, handle.id, CaseStatus.WITH_ACCOUNTING)
    await answer(client, handle.id, resolution("credit", "25.00", by="acct-ana", event_id="a-1"))
    return handle


async def no_change(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """A money-moving signal ignored, then no change by a supervisor: the charges stand."""
    handle = await invoiced_case(env, client, cases, shop)
    await handle.signal(
        "dispute_resolved",
        {"event_id": "sig-1", "outcome": "credit", "amount": "5.00", "explanation": "ui"},
    )
    await resolve(client, handle.id, resolution("no_change", by="sup-sam"))
    return handle


SCENARIOS: dict[str, tuple[Scenario, CaseStatus]] = {
    "resolved_by_agent_refund": (resolved_by_agent_refund, CaseStatus.RESOLVED),
    "escalated_answered_by_accounting": (escalated_answered_by_accounting, CaseStatus.RESOLVED),
    "no_change": (no_change, CaseStatus.RESOLVED),
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
