"""Replay: today's FreightClaimWorkflow code must reproduce the histories of claims it ran.

A freight claim stays open for weeks (the carrier followed up weekly for CARRIER_CLAIM_WAIT),
so a deployment always meets claims opened by the code before it. Same guards as
``test_replay.py`` (read its docstring for when and how to record again):
``REPLAY_RECORD=1 .venv/bin/pytest tests/test_freight_claim_replay.py -k fresh``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from registry import ACCOUNTING_CLOSED
from starter import deliver, start_case
from tests.case_helpers import timers_started
from tests.conftest import Cases, Shop
from tests.freight_claim_helpers import (
    approve,
    carrier_answers,
    claim,
    claim_state,
    shipped_order,
    status_of,
)
from tests.recorded_histories import ROOT, Shelf
from workflows.freight_claim import FreightClaimWorkflow
from workflows.freight_claim_models import AccountingClosing
from workflows.models import CaseStatus

SHELF = Shelf(ROOT / "freight_claims", FreightClaimWorkflow)

Scenario = Callable[[WorkflowEnvironment, Client, Cases, Shop], Awaitable[WorkflowHandle[Any, Any]]]


async def under_200_refunded(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """200.00: no manager; refunded, filed, settled by the carrier's event (sent twice)."""
    handle = await cases.start(start_case, claim(shipped_order(shop), "200.00"))
    await status_of(client, handle.id, CaseStatus.AWAITING_CARRIER)
    await timers_started(handle)
    payload = {"event_id": "cs-1", "settled_amount": "200.00", "reported_by": "backend"}
    await handle.signal("carrier_settled", payload)
    await handle.signal("carrier_settled", payload)
    return handle


async def over_200_approved_settled(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """250.00: approved; a replacement of two skus; the carrier settles by the second check."""
    request = claim(
        shipped_order(shop),
        "250.00",
        resolution="replacement",
        skus=("BISON-RIBEYE", "ELK-SAUSAGE"),
    )
    handle = await cases.start(start_case, request)
    await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await timers_started(handle)  # the gate waits for its reminder: the request is out
    await approve(client, handle.id)
    await status_of(client, handle.id, CaseStatus.AWAITING_CARRIER)
    await timers_started(handle, 2)  # then the first follow-up
    await env.sleep(timedelta(days=7, minutes=1))
    await claim_state(client, handle.id, lambda s: s.follow_ups == 1)
    carrier_answers(shop, handle.id, "settled", "230.00")
    return handle


async def escalated_to_accounting(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> WorkflowHandle[Any, Any]:
    """Never settled: five follow-ups over 30 days, then Accounting, which closes it."""
    handle = await cases.start(start_case, claim(shipped_order(shop), "60.00", kind="lost"))
    await status_of(client, handle.id, CaseStatus.AWAITING_CARRIER)
    await timers_started(handle)
    await env.sleep(timedelta(days=30, minutes=1))
    await status_of(client, handle.id, CaseStatus.WITH_ACCOUNTING)
    closing = AccountingClosing(event_id="acct-1", note="written off", closed_by="acct-ana")
    await deliver(client, handle.id, ACCOUNTING_CLOSED, closing)
    return handle


SCENARIOS: dict[str, tuple[Scenario, CaseStatus]] = {
    "claim_under_200_refunded": (under_200_refunded, CaseStatus.COMPLETED),
    "claim_over_200_approved_settled": (over_200_approved_settled, CaseStatus.COMPLETED),
    "claim_escalated_to_accounting": (escalated_to_accounting, CaseStatus.COMPLETED),
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
