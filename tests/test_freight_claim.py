"""FreightClaimWorkflow (SOPs Shipping Issues, Manager Authorization Required: freight
claims over $200), specified against the time-skipping server and a real database."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.cases import CaseActivities
from infra.db import Order
from registry import ACCOUNTING_CLOSED
from settings import Settings
from starter import EventRefused, deliver, start_case
from tests.case_helpers import activities_in_order, audit, emails, events, timers_started
from tests.conftest import Cases, Shop
from tests.freight_claim_helpers import (
    PHOTOS,
    TRACKING,
    approvals,
    approve,
    carrier_answers,
    carrier_claims,
    claim,
    claim_state,
    refunds,
    reject,
    replacement_orders,
    shipped_order,
    status_of,
)
from workflows.freight_claim_models import (
    AccountingClosing,
    ClaimHandOff,
    ClaimOpened,
    FreightClaimRequest,
    FreightClaimState,
)
from workflows.models import CaseStatus

WEEK = timedelta(days=7)


async def start(cases: Cases, request: FreightClaimRequest) -> WorkflowHandle[Any, Any]:
    return await cases.start(start_case, request)


async def awaiting_approval(client: Client, handle: WorkflowHandle[Any, Any]) -> None:
    """The approval was requested (its emails and row written) and the gate is waiting."""
    await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await timers_started(handle)


async def close_by_accounting(
    client: Client, case_id: str, event_id: str, settled: str | None = None
) -> FreightClaimState:
    closing = AccountingClosing(
        event_id=event_id,
        settled_amount=None if settled is None else Decimal(settled),
        note="carrier paid after a call",
        closed_by="acct-ana",
    )
    state: FreightClaimState = await deliver(client, case_id, ACCOUNTING_CLOSED, closing)
    return state


def follow_ups(scheduled: list[str]) -> int:
    return scheduled.count("claim_status")


# ---- the threshold: strictly over 200.00 ---------------------------------------------------


async def test_a_claim_of_exactly_200_needs_no_manager_and_is_refunded_at_once(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    handle = await start(cases, claim(order_id, "200.00"))

    state = await status_of(client, handle.id, CaseStatus.AWAITING_CARRIER)

    assert state.approval is None and approvals(shop, handle.id) == []
    [paid] = refunds(shop, handle.id)
    assert paid.amount == Decimal("200.00")
    assert state.refund_reference == paid.reference
    [filed] = carrier_claims(shop, handle.id)
    assert (filed.status, filed.amount) == ("filed", Decimal("200.00"))
    assert state.carrier_reference == filed.reference
    assert len(emails(shop, handle.id, "freight_claim_refunded")) == 1
    assert "approval_requested" not in [e.template for e in emails(shop, handle.id)]


async def test_a_claim_of_200_01_waits_for_a_manager_before_anything_is_paid_or_filed(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    handle = await start(cases, claim(order_id, "200.01"))

    state = await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await timers_started(handle)  # the request is out; the gate waits

    assert state.approval is not None and state.approval.amount == Decimal("200.01")
    [asked] = approvals(shop, handle.id)
    assert (asked.kind, asked.rule, asked.status) == (
        "authorization",
        "FREIGHT_CLAIM_ABOVE",
        "pending",
    )
    assert refunds(shop, handle.id) == []
    assert carrier_claims(shop, handle.id) == []
    assert len(emails(shop, handle.id, "approval_requested")) >= 1


# ---- approved, rejected ----------------------------------------------------------------------


async def test_an_approved_claim_pays_once_and_files_with_the_carrier_once(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    handle = await start(cases, claim(order_id, "250.00"))
    await awaiting_approval(client, handle)

    await approve(client, handle.id)
    state = await status_of(client, handle.id, CaseStatus.AWAITING_CARRIER)

    [paid] = refunds(shop, handle.id)
    assert paid.amount == Decimal("250.00")
    [filed] = carrier_claims(shop, handle.id)
    assert (filed.status, filed.amount, filed.order_id) == ("filed", Decimal("250.00"), order_id)
    assert filed.key == f"{handle.id}/carrier-claim"
    scheduled = await activities_in_order(handle)
    assert scheduled.count("issue_refund") == 1 and scheduled.count("file_claim") == 1
    assert scheduled.index("issue_refund") < scheduled.index("file_claim")
    assert state.approval is not None and state.approval.decided_by == "mgr-mia"
    recorded = events(shop, handle.id)
    assert recorded.index("approval_approved") < recorded.index("carrier_claim_filed")


async def test_a_rejected_claim_pays_nothing_files_nothing_and_tells_the_customer(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    handle = await start(cases, claim(order_id, "280.00"))
    await awaiting_approval(client, handle)

    await reject(client, handle.id, "photos show the damage happened after delivery")
    await handle.result()

    final = await status_of(client, handle.id, CaseStatus.REJECTED)
    assert final.outcome is not None and "after delivery" in final.outcome.reason
    assert refunds(shop, handle.id) == []
    assert carrier_claims(shop, handle.id) == []
    [told] = emails(shop, handle.id, "freight_claim_rejected")
    assert "after delivery" in told.body


async def test_an_unanswered_approval_expires_and_the_customer_is_told(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    handle = await start(cases, claim(order_id, "201.00"))

    await handle.result()

    await status_of(client, handle.id, CaseStatus.EXPIRED)
    assert refunds(shop, handle.id) == [] and carrier_claims(shop, handle.id) == []
    assert len(emails(shop, handle.id, "freight_claim_expired")) == 1


async def test_a_claim_beyond_what_the_order_can_refund_is_rejected_at_verification(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop, "150.00")
    handle = await start(cases, claim(order_id, "180.00"))

    await handle.result()

    final = await status_of(client, handle.id, CaseStatus.REJECTED)
    assert final.outcome is not None and "150.00" in final.outcome.reason
    assert approvals(shop, handle.id) == [] and refunds(shop, handle.id) == []
    assert len(emails(shop, handle.id, "freight_claim_rejected")) == 1


# ---- the evidence and the replacement ------------------------------------------------------


async def test_the_claim_is_recorded_with_its_photos_and_tracking_number(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    handle = await start(cases, claim(order_id, "120.00"))
    await status_of(client, handle.id, CaseStatus.AWAITING_CARRIER)

    [recorded] = [line for line in audit(shop, handle.id) if line.event == "claim_recorded"]
    assert recorded.actor == "agent-amy"
    assert recorded.detail["photos"] == " ".join(PHOTOS)
    assert recorded.detail["tracking_number"] == TRACKING
    assert recorded.detail["kind"] == "damaged"


async def test_a_replacement_ships_each_sku_instead_of_money(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    request = claim(
        order_id, "300.00", resolution="replacement", skus=("BISON-RIBEYE", "ELK-SAUSAGE")
    )
    handle = await start(cases, request)
    await awaiting_approval(client, handle)
    await approve(client, handle.id)

    state = await status_of(client, handle.id, CaseStatus.AWAITING_CARRIER)

    assert refunds(shop, handle.id) == []
    assert len(state.replacement_order_ids) == 2
    placed = replacement_orders(shop, state.replacement_order_ids)
    assert [(o.total, o.status, o.customer_id) for o in placed] == [
        (Decimal("0.00"), "processing", "C-100")
    ] * 2
    [filed] = carrier_claims(shop, handle.id)
    assert filed.amount == Decimal("300.00")
    [told] = emails(shop, handle.id, "freight_claim_replacement")
    assert "BISON-RIBEYE, ELK-SAUSAGE" in told.body


async def test_a_replacement_of_a_sku_not_on_the_order_is_rejected(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    handle = await start(
        cases, claim(order_id, "50.00", resolution="replacement", skus=("YAK-JERKY",))
    )

    await handle.result()

    final = await status_of(client, handle.id, CaseStatus.REJECTED)
    assert final.outcome is not None and "YAK-JERKY" in final.outcome.reason
    assert carrier_claims(shop, handle.id) == []


# ---- the carrier's follow-up ---------------------------------------------------------------


async def test_weekly_carrier_follow_ups_stop_when_the_carrier_settles(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    handle = await start(cases, claim(order_id, "150.00"))
    await status_of(client, handle.id, CaseStatus.AWAITING_CARRIER)
    await timers_started(handle)

    await env.sleep(WEEK + timedelta(minutes=1))
    first = await claim_state(client, handle.id, lambda s: s.follow_ups == 1)
    assert first.status is CaseStatus.AWAITING_CARRIER and first.carrier_status == "filed"
    carrier_answers(shop, handle.id, "settled", "140.00")
    await env.sleep(WEEK)
    await handle.result()

    final = await status_of(client, handle.id, CaseStatus.COMPLETED)
    assert final.follow_ups == 2 and final.settled_amount == Decimal("140.00")
    assert follow_ups(await activities_in_order(handle)) == 2
    recorded = events(shop, handle.id)
    assert recorded.count("carrier_followed_up") == 2
    assert recorded.index("carrier_claim_settled") > recorded.index("carrier_followed_up")
    assert len(refunds(shop, handle.id)) == 1  # the customer was paid once, before the carrier


async def test_a_carrier_settled_event_ends_the_wait_without_another_follow_up(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    handle = await start(cases, claim(order_id, "90.00"))
    await status_of(client, handle.id, CaseStatus.AWAITING_CARRIER)
    await timers_started(handle)

    payload = {"event_id": "cs-1", "settled_amount": "90.00", "reported_by": "backend"}
    await handle.signal("carrier_settled", payload)
    await handle.signal("carrier_settled", payload)  # the backend retried
    await handle.result()

    final = await status_of(client, handle.id, CaseStatus.COMPLETED)
    assert final.settled_amount == Decimal("90.00") and final.follow_ups == 0
    assert follow_ups(await activities_in_order(handle)) == 0
    assert events(shop, handle.id).count("carrier_settled_reported") == 1


async def test_no_settlement_after_30_days_escalates_to_accounting_which_closes_it(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = shipped_order(shop)
    handle = await start(cases, claim(order_id, "75.00"))
    await status_of(client, handle.id, CaseStatus.AWAITING_CARRIER)
    await timers_started(handle)
    with pytest.raises(EventRefused) as early:
        await close_by_accounting(client, handle.id, "early-1")
    assert early.value.kind == "NotWithAccounting"

    await env.sleep(timedelta(days=30, minutes=1))
    escalated = await status_of(client, handle.id, CaseStatus.WITH_ACCOUNTING)

    assert escalated.escalated_to_accounting
    # Days 7, 14, 21 and 28, and the last look at day 30.
    assert escalated.follow_ups == 5
    assert follow_ups(await activities_in_order(handle)) == 5
    [filed] = carrier_claims(shop, handle.id)
    [escalation] = emails(shop, handle.id, "freight_claim_accounting")
    assert escalation.to_address == "accounting@exoticmeats.com"
    assert filed.reference in escalation.body and "203" in escalation.body
    assert len(refunds(shop, handle.id)) == 1

    await env.sleep(WEEK * 4)  # Accounting owns it now: no more follow-ups, however long
    assert follow_ups(await activities_in_order(handle)) == 5
    closed = await close_by_accounting(client, handle.id, "acct-1", settled="60.00")
    await handle.result()

    final = await status_of(client, handle.id, CaseStatus.COMPLETED)
    assert closed.status is CaseStatus.WITH_ACCOUNTING  # the answer, before the case moved on
    assert final.outcome is not None and "Accounting" in final.outcome.reason
    assert final.settled_amount == Decimal("60.00")
    [line] = [a for a in audit(shop, handle.id) if a.event == "accounting_closed"]
    assert line.actor == "acct-ana"


# ---- the hand-off of a lost parcel -----------------------------------------------------------


async def test_a_retried_hand_off_finds_the_claim_it_opened_after_the_claim_refunded_the_order(
    client: Client, cases: Cases, shop: Shop, settings: Settings, activities: CaseActivities
) -> None:
    order_id = shipped_order(shop, "180.00")
    hand_off = ClaimHandOff(
        case_id="rush-req-lost-1", order_id=order_id, customer_id="C-100", tracking_number="1Z7"
    )
    attempt = ActivityEnvironment(client)
    attempt.info = replace(ActivityEnvironment.default_info(), task_queue=settings.task_queue)

    opened = await attempt.run(activities.open_freight_claim, hand_off)
    assert opened.case_id is not None and opened.amount == Decimal("180.00")
    cases.handles.append(client.get_workflow_handle(opened.case_id))
    claimed = await status_of(client, opened.case_id, CaseStatus.AWAITING_CARRIER)
    again = await attempt.run(activities.open_freight_claim, hand_off)

    assert again == opened  # not "nothing left to claim", though the order is refunded now
    assert (claimed.linked_case_id, claimed.kind, claimed.requested_by) == (
        "rush-req-lost-1",
        "lost",
        "system",
    )
    assert [entry.amount for entry in refunds(shop, opened.case_id)] == [Decimal("180.00")]


async def test_no_claim_is_opened_for_an_order_with_nothing_left_to_refund(
    cases: Cases, shop: Shop, settings: Settings, activities: CaseActivities, client: Client
) -> None:
    order_id = shipped_order(shop, "180.00")
    with shop.db.transaction() as session:
        session.execute(update(Order).where(Order.id == order_id).values(refunded=Decimal("180")))
    attempt = ActivityEnvironment(client)
    attempt.info = replace(ActivityEnvironment.default_info(), task_queue=settings.task_queue)

    opened = await attempt.run(
        activities.open_freight_claim,
        ClaimHandOff(case_id="rush-req-lost-2", order_id=order_id, customer_id="C-100"),
    )

    assert opened == ClaimOpened()
