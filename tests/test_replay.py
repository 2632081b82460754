"""Replay: today's RefundWorkflow code must reproduce the histories of cases it ran.

Two guards:

- ``test_a_fresh_history_replays`` runs a case through the real worker, fetches its history
  and replays it: the workflow code is deterministic (no clock, randomness or I/O outside
  activities, the same commands for the same events).
- ``test_a_recorded_history_replays`` replays histories stored under ``tests/histories/``.
  Cases live for days; a worker deployed tomorrow replays the histories of cases opened
  today. A stored history is the only thing that notices when a change to the workflow
  (a new activity before an old one, a renamed timer, a field that old payloads lack) would
  break those open cases. Such a change needs ``workflow.patched(...)``; only when no case
  of the old shape can still be open may the files be recorded again, with
  ``REPLAY_RECORD=1 .venv/bin/pytest tests/test_replay.py -k fresh`` (and the reason in the
  commit message). To add a scenario, record only it: ``-k "fresh and <scenario>"``.

Some scenarios run under non-default settings (``SETTINGS``): the rules a case opens with
decide which timers and steps it takes, so a change that only shows under other rules (a
lower threshold, another approval clock) must be caught too.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from starter import DecisionRefused, case_state, decide
from tests.approval_helpers import code_for
from tests.conftest import Cases, Shop
from tests.recorded_histories import ROOT, Shelf, opening_rules, rules_apart_from_defaults
from workflows.models import (
    CaseStatus,
    Decision,
    DecisionKind,
    RefundRequest,
)
from workflows.refund import RefundWorkflow
from workflows.sla import SLA_CLOCKS

SHELF = Shelf(ROOT, RefundWorkflow)


def refund(amount: str) -> RefundRequest:
    return RefundRequest(
        request_id=f"replay-{uuid.uuid4().hex[:10]}",
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal(amount),
        reason="thawed on arrival",
        requested_by="agent-amy",
    )


async def wait_for_approval(client: Client, handle: WorkflowHandle[Any, Any]) -> None:
    for _ in range(200):
        if (await case_state(client, handle.id)).status is CaseStatus.AWAITING_APPROVAL:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never waited for approval")


# ---- the scenarios whose histories are replayed -------------------------------------------------


async def approved_by_update(client: Client, cases: Cases, shop: Shop) -> WorkflowHandle[Any, Any]:
    handle = await cases.refund(refund("750.00"))
    await wait_for_approval(client, handle)
    await decide(
        client,
        handle.id,
        Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE, event_id="evt-update"),
    )
    return handle


async def store_credit_then_signal(
    client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    handle = await cases.refund(refund("750.00"))
    await wait_for_approval(client, handle)
    await handle.signal("choose_store_credit", {"event_id": "evt-credit"})
    await handle.signal("decision", {"approver_id": "mgr-ghost", "decision": "approve"})
    code = await code_for(shop, "sup-sam")
    await handle.signal(
        "decision",
        {"approver_id": "sup-sam", "decision": "approve", "event_id": "evt-signal", "code": code},
    )
    return handle


async def signal_verified_by_code(
    client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """The verified path: a signal without a code is refused, then one with it applies."""
    handle = await cases.refund(refund("750.00"))
    await wait_for_approval(client, handle)
    code = await code_for(shop, "mgr-mia")
    await handle.signal(
        "decision", {"approver_id": "mgr-mia", "decision": "approve", "event_id": "evt-1"}
    )
    await handle.signal(
        "decision",
        {"approver_id": "mgr-mia", "decision": "approve", "event_id": "evt-2", "code": code},
    )
    return handle


async def approved_by_link(client: Client, cases: Cases, shop: Shop) -> WorkflowHandle[Any, Any]:
    """The email link's update: a wrong code is refused, then the approver's own applies."""
    handle = await cases.refund(refund("750.00"))
    await wait_for_approval(client, handle)
    code = await code_for(shop, "mgr-mia")
    for event_id, given in (("link-wrong", "AAAA-BBBB-CCCC"), ("link-right", code)):
        decision = Decision(
            approver_id="mgr-mia", decision=DecisionKind.APPROVE, event_id=event_id, code=given
        )
        with contextlib.suppress(DecisionRefused):
            await decide(client, handle.id, decision, update="decide_with_code")
    return handle


async def under_threshold(client: Client, cases: Cases, shop: Shop) -> WorkflowHandle[Any, Any]:
    return await cases.refund(refund("120.00"))  # no manager: the shortest path


async def expired(client: Client, cases: Cases, shop: Shop) -> WorkflowHandle[Any, Any]:
    return await cases.refund(refund("750.00"))  # reminder, escalation, expiry


async def approved_over_a_lower_threshold(
    client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """300.00 needs no manager by default; over a 100.00 threshold it waits for one."""
    handle = await cases.refund(refund("300.00"))
    await wait_for_approval(client, handle)
    await decide(
        client,
        handle.id,
        Decision(approver_id="sup-sam", decision=DecisionKind.APPROVE, event_id="evt-low"),
    )
    return handle


SCENARIOS: dict[str, tuple[Callable[[Client, Cases, Shop], Awaitable[Any]], CaseStatus]] = {
    "refund_approved_by_update": (approved_by_update, CaseStatus.COMPLETED),
    "refund_approved_by_signal_with_code": (signal_verified_by_code, CaseStatus.COMPLETED),
    "refund_approved_by_link": (approved_by_link, CaseStatus.COMPLETED),
    "refund_store_credit_approved_by_signal": (store_credit_then_signal, CaseStatus.COMPLETED),
    "refund_expired": (expired, CaseStatus.EXPIRED),
    # Recorded on the lean-bookkeeping path (lines riding with effects, flushed before waits).
    "refund_lean_under_threshold": (under_threshold, CaseStatus.COMPLETED),
    "refund_lean_store_credit_approved_by_signal": (store_credit_then_signal, CaseStatus.COMPLETED),
    "refund_lean_expired": (expired, CaseStatus.EXPIRED),
    "refund_approved_over_a_lower_threshold": (
        approved_over_a_lower_threshold,
        CaseStatus.COMPLETED,
    ),
    "refund_expired_on_a_short_approval_clock": (expired, CaseStatus.EXPIRED),
    # Recorded with SLA clocks: warnings, breaches (expired) and clocks stopped by a decision.
    "refund_sla_clocks_expired": (expired, CaseStatus.EXPIRED),
    "refund_sla_clocks_approved_by_update": (approved_by_update, CaseStatus.COMPLETED),
}

# The settings (other than the defaults) each scenario's worker, and so its case, runs under.
SETTINGS: dict[str, dict[str, Any]] = {
    "refund_approved_over_a_lower_threshold": {"refund_approval_above": Decimal("100.00")},
    "refund_expired_on_a_short_approval_clock": {
        "approval_remind_after": timedelta(hours=1),
        "approval_escalate_after": timedelta(hours=2),
        "approval_expire_after_days": 1,
        "business_timezone": "Europe/London",
        "business_days": (0, 1, 2, 3, 4, 5),
    },
}


@pytest.mark.parametrize(
    ("scenario", "settings"),
    [(name, SETTINGS.get(name, {})) for name in sorted(SCENARIOS)],
    ids=sorted(SCENARIOS),
    indirect=["settings"],
)
async def test_a_fresh_history_replays(
    client: Client, cases: Cases, shop: Shop, scenario: str
) -> None:
    run, final = SCENARIOS[scenario]
    handle: WorkflowHandle[Any, Any] = await run(client, cases, shop)
    await SHELF.check_fresh(scenario, handle, final)


def test_every_scenario_has_a_recorded_history() -> None:
    assert {path.stem for path in SHELF.recorded()} == set(SCENARIOS)


@pytest.mark.parametrize("path", SHELF.recorded(), ids=lambda path: path.stem)
async def test_a_recorded_history_replays(path: Path) -> None:
    result = await SHELF.replay(SHELF.load(path))

    assert result.replay_failure is None


@pytest.mark.parametrize("scenario", [name for name in SCENARIOS if "_sla_clocks_" in name])
def test_a_history_with_sla_clocks_was_recorded_with_them(scenario: str) -> None:
    history = SHELF.load(SHELF.folder / f"{scenario}.json")
    markers = [
        event.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]

    assert any(SLA_CLOCKS.encode() in data for data in markers)


@pytest.mark.parametrize("scenario", sorted(SETTINGS))
def test_a_history_for_other_settings_was_recorded_under_them(scenario: str) -> None:
    expected = rules_apart_from_defaults(SETTINGS[scenario])
    recorded = opening_rules(SHELF.load(SHELF.folder / f"{scenario}.json"))

    assert expected, f"{scenario}: its settings change no rule of the case"
    assert {key: recorded.get(key) for key in expected} == expected
