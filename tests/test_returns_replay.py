"""Replay: today's ReturnWorkflow code must reproduce the histories of returns it ran.

Returns stay open for weeks, so a deployment always meets cases opened by the code before
it. Same two guards as ``test_replay.py`` (read its docstring for when and how to record
again): ``REPLAY_RECORD=1 .venv/bin/pytest tests/test_returns_replay.py -k fresh``. Some
scenarios run under non-default settings (``SETTINGS``), as there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from starter import decide, receive_package, report_inspection
from tests.case_helpers import wait_for_status
from tests.conftest import Cases, Shop
from tests.recorded_histories import ROOT, Shelf, opening_rules, rules_apart_from_defaults
from tests.return_helpers import EVERYTHING, awaiting_return, delivered_order, return_of, start
from workflows.models import CaseStatus, Decision, DecisionKind
from workflows.return_models import InspectionResult, PackageReceived
from workflows.returns import ReturnWorkflow

SHELF = Shelf(ROOT / "returns", ReturnWorkflow)

Scenario = Callable[[WorkflowEnvironment, Client, Cases, Shop], Awaitable[WorkflowHandle[Any, Any]]]


async def refunded_after_approval(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Reminder, package by update, a bad inspection signal, inspection by signal, approval."""
    handle = await start(cases, return_of(await delivered_order(env, shop), EVERYTHING))
    ra_number = await awaiting_return(client, handle)
    await env.sleep(timedelta(days=15))
    await receive_package(
        client, handle.id, PackageReceived(event_id="scan-1", ra_number=ra_number)
    )
    await wait_for_status(client, handle.id, CaseStatus.INSPECTING)
    await handle.signal("choose_store_credit", {"event_id": "credit-1"})
    await handle.signal("inspection_completed", {"passed": "maybe"})
    await handle.signal("inspection_completed", {"event_id": "insp-1", "passed": True})
    await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE))
    return handle


async def expired(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    return await start(cases, return_of(await delivered_order(env, shop)))


async def window_exception_rejected(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    handle = await start(cases, return_of(await delivered_order(env, shop, days_ago=60)))
    await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, Decision(approver_id="sup-sam", decision=DecisionKind.REJECT))
    return handle


async def held_refund_inspected_less(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """The refund held before the RA, shrunk by inspection, then paid from the hold."""
    handle = await start(cases, return_of(await delivered_order(env, shop)))
    ra_number = await awaiting_return(client, handle)
    await receive_package(
        client, handle.id, PackageReceived(event_id="scan-1", ra_number=ra_number)
    )
    await wait_for_status(client, handle.id, CaseStatus.INSPECTING)
    await report_inspection(
        client,
        handle.id,
        InspectionResult(event_id="insp-1", passed=True, refund_amount=Decimal("250.00")),
    )
    return handle


async def refunded_within_a_longer_window(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Delivered 45 days ago (inside a 60-day window), reminded at day 5, received at day 7."""
    handle = await start(cases, return_of(await delivered_order(env, shop, days_ago=45)))
    ra_number = await awaiting_return(client, handle)
    await env.sleep(timedelta(days=7))
    await receive_package(
        client, handle.id, PackageReceived(event_id="scan-1", ra_number=ra_number)
    )
    await wait_for_status(client, handle.id, CaseStatus.INSPECTING)
    await report_inspection(client, handle.id, InspectionResult(event_id="insp-1", passed=True))
    return handle


SCENARIOS: dict[str, tuple[Scenario, CaseStatus]] = {
    "return_held_refund_inspected_less": (held_refund_inspected_less, CaseStatus.COMPLETED),
    "return_refunded_after_approval": (refunded_after_approval, CaseStatus.COMPLETED),
    "return_expired": (expired, CaseStatus.EXPIRED),
    "return_window_exception_rejected": (window_exception_rejected, CaseStatus.REJECTED),
    # Recorded on the lean-bookkeeping path (lines riding with effects, flushed before waits).
    "return_lean_refunded_after_approval": (refunded_after_approval, CaseStatus.COMPLETED),
    "return_lean_expired": (expired, CaseStatus.EXPIRED),
    "return_expired_before_its_late_reminder": (expired, CaseStatus.EXPIRED),
    "return_refunded_within_a_longer_window": (
        refunded_within_a_longer_window,
        CaseStatus.COMPLETED,
    ),
}

# The settings (other than the defaults) each scenario's worker, and so its case, runs under.
SETTINGS: dict[str, dict[str, Any]] = {
    # The reminder would come after the RA expired: the case sets no reminder timer at all.
    "return_expired_before_its_late_reminder": {"return_reminder_after": timedelta(days=40)},
    "return_refunded_within_a_longer_window": {
        "return_window": timedelta(days=60),
        "return_reminder_after": timedelta(days=5),
        "ra_expires_after": timedelta(days=10),
    },
}


@pytest.mark.parametrize(
    ("scenario", "settings"),
    [(name, SETTINGS.get(name, {})) for name in sorted(SCENARIOS)],
    ids=sorted(SCENARIOS),
    indirect=["settings"],
)
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


@pytest.mark.parametrize("scenario", sorted(SETTINGS))
def test_a_history_for_other_settings_was_recorded_under_them(scenario: str) -> None:
    expected = rules_apart_from_defaults(SETTINGS[scenario])
    recorded = opening_rules(SHELF.load(SHELF.folder / f"{scenario}.json"))

    assert expected, f"{scenario}: its settings change no rule of the case"
    assert {key: recorded.get(key) for key in expected} == expected
