"""CancellationWorkflow (SOP Order Cancellations), specified against the time-skipping server
and a real database: refunds once before shipping, a manager over the threshold, store credit,
a linked return after shipping, the race with the warehouse, and the reason documented."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from infra.db import Order
from starter import EventRefused, case_state, choose_store_credit, decide, start_case
from tests.cancellation_helpers import (
    an_order,
    cancellation,
    cancellation_state,
    decline_return,
    deliver_order,
    notes,
    order,
    refunds,
    request_return,
    ship,
    start,
    status_of,
)
from tests.case_helpers import TUESDAY, audit, emails, events, eventually, move_to, state_of
from tests.conftest import Cases, Shop
from workflows.models import CaseStatus, Decision, DecisionKind, RefundMethod, StoreCreditChoice
from workflows.return_models import ReturnState


async def approve(client: Client, case_id: str) -> None:
    await decide(client, case_id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE))


# ---- not shipped: cancelled and refunded --------------------------------------------------


async def test_a_cancellation_before_shipping_cancels_the_order_and_refunds_it_once(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    request = cancellation(order_id)
    handle = await start(cases, request)

    outcome = await handle.result()
    again = await cases.start(start_case, request)

    assert outcome.status is CaseStatus.CANCELLED
    assert again.id == handle.id  # the same request is the same case, not a second refund
    [refund] = refunds(shop, handle.id)
    assert refund.amount == Decimal("200.00")
    assert refund.method == RefundMethod.ORIGINAL_PAYMENT.value
    placed = order(shop, order_id)
    assert (placed.status, placed.refunded, placed.reserved) == (
        "cancelled",
        Decimal("200"),
        Decimal("0"),
    )
    [email] = emails(shop, handle.id, "cancellation_confirmed")
    assert "200.00" in email.body
    assert "original payment" in email.body
    assert "within 5-10 business days" in email.body
    assert refund.reference in email.body
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.CANCELLED
    assert state.amount == Decimal("200.00")
    assert events(shop, handle.id)[-1] == "case_cancelled"


async def test_an_order_with_nothing_left_to_refund_is_cancelled_without_a_payment(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    with shop.db.transaction() as session:
        session.execute(update(Order).where(Order.id == order_id).values(refunded=200))
    handle = await start(cases, cancellation(order_id))

    outcome = await handle.result()

    assert outcome.status is CaseStatus.CANCELLED
    assert refunds(shop, handle.id) == []
    assert order(shop, order_id).status == "cancelled"
    [email] = emails(shop, handle.id, "cancellation_confirmed")
    assert "Nothing was left to refund" in email.body


async def test_the_reason_is_recorded_in_the_audit_trail_and_noted_on_the_order(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    handle = await start(cases, cancellation(an_order(shop), reason="duplicate_order"))
    await handle.result()

    [requested] = [
        line for line in audit(shop, handle.id) if line.event == "cancellation_requested"
    ]
    assert requested.actor == "agent-amy"
    assert requested.detail == {
        "reason": "duplicate_order",
        "reason_text": "half price at the shop next door",
    }
    assert notes(shop, handle.id) == ["duplicate_order: half price at the shop next door"]
    state = await cancellation_state(client, handle.id, lambda s: s.status.is_final)
    assert state.reason == "duplicate_order"


async def test_a_reason_not_in_the_list_is_refused_by_the_case_itself_and_changes_nothing(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    # The entry points refuse it first (422); a typed client skipping them meets the case.
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    handle = await start(cases, cancellation(order_id, reason="bored"))

    outcome = await handle.result()

    assert outcome.status is CaseStatus.REJECTED
    assert "unknown cancellation reason" in outcome.reason
    assert order(shop, order_id).status == "processing"
    assert refunds(shop, handle.id) == []
    assert len(emails(shop, handle.id, "cancellation_rejected")) == 1


# ---- over the threshold: a manager first ----------------------------------------------------


async def test_a_refund_over_500_waits_for_a_manager_before_the_order_is_cancelled(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop, big=True)
    handle = await start(cases, cancellation(order_id))

    waiting = await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    assert waiting.approval is not None and waiting.approval.amount == Decimal("750.00")
    held = order(shop, order_id)
    assert (held.status, held.reserved, held.refunded) == (
        "processing",
        Decimal("750"),
        Decimal("0"),
    )
    assert refunds(shop, handle.id) == []

    await approve(client, handle.id)
    outcome = await handle.result()

    assert outcome.status is CaseStatus.CANCELLED
    [refund] = refunds(shop, handle.id)
    assert refund.amount == Decimal("750.00")
    done = order(shop, order_id)
    assert (done.status, done.reserved, done.refunded) == (
        "cancelled",
        Decimal("0"),
        Decimal("750"),
    )


async def test_500_exactly_is_refunded_without_a_manager(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = "ORD-500"
    shop.add_order(order_id, "500.00", status="processing")
    handle = await start(cases, cancellation(order_id))

    outcome = await handle.result()

    assert outcome.status is CaseStatus.CANCELLED
    assert "approval_requested" not in events(shop, handle.id)
    assert [r.amount for r in refunds(shop, handle.id)] == [Decimal("500.00")]


async def test_store_credit_chosen_while_the_manager_decides_is_how_the_refund_is_paid(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    handle = await start(cases, cancellation(an_order(shop, big=True)))
    await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)

    await choose_store_credit(
        client, handle.id, StoreCreditChoice(event_id="sc-1", chosen_by="backend")
    )
    await cancellation_state(
        client, handle.id, lambda s: s.refund_method is RefundMethod.STORE_CREDIT
    )
    await approve(client, handle.id)
    outcome = await handle.result()

    assert outcome.method is RefundMethod.STORE_CREDIT
    [refund] = refunds(shop, handle.id)
    assert refund.method == RefundMethod.STORE_CREDIT.value
    [email] = emails(shop, handle.id, "cancellation_confirmed")
    assert "store credit" in email.body
    assert "immediately" in email.body


async def test_a_manager_who_refuses_leaves_the_order_as_it_was(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop, big=True)
    handle = await start(cases, cancellation(order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)

    await decide(
        client,
        handle.id,
        Decision(approver_id="mgr-mia", decision=DecisionKind.REJECT, note="call the customer"),
    )
    outcome = await handle.result()

    assert outcome.status is CaseStatus.REJECTED
    assert "not cancelled" in outcome.reason
    kept = order(shop, order_id)
    assert (kept.status, kept.reserved, kept.refunded) == ("processing", Decimal("0"), Decimal("0"))
    assert refunds(shop, handle.id) == []


# ---- shipped: a return instead ---------------------------------------------------------------


async def test_the_order_shipping_while_the_manager_decides_refunds_nothing_and_offers_a_return(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop, big=True)
    handle = await start(cases, cancellation(order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)

    ship(shop, order_id)  # the warehouse was quicker than the manager
    await approve(client, handle.id)

    offered = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert offered.order_outcome == "shipped"
    assert refunds(shop, handle.id) == []
    left = order(shop, order_id)
    assert (left.status, left.reserved, left.refunded) == ("shipped", Decimal("0"), Decimal("0"))
    [offer] = await eventually(lambda: emails(shop, handle.id, "cancellation_return_offered"))
    assert "shipped" in offer.body
    assert events(shop, handle.id).index("order_not_cancellable") > events(shop, handle.id).index(
        "approval_approved"
    )


async def test_after_shipping_a_requested_return_opens_a_linked_return_case(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    now = await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    deliver_order(shop, order_id, now - timedelta(days=1))
    handle = await start(cases, cancellation(order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)

    answered = await request_return(client, handle.id)
    outcome = await handle.result()

    assert answered.return_answer == "requested"
    assert outcome.status is CaseStatus.CONVERTED_TO_RETURN
    state = await cancellation_state(client, handle.id, lambda s: s.status.is_final)
    assert state.return_case_id == f"return-{handle.id}"
    # The return keeps its own lifecycle: it runs, has issued its RA, and names its origin.
    returned = await state_of(
        client, state.return_case_id, ReturnState, lambda s: s.ra_number is not None
    )
    assert returned.linked_case_id == handle.id
    assert returned.status is CaseStatus.AWAITING_RETURN
    assert {(item.sku, item.quantity) for item in returned.items} == {
        ("BISON-RIBEYE", 2),
        ("ELK-SAUSAGE", 4),
    }
    assert refunds(shop, handle.id) == []
    [converted] = emails(shop, handle.id, "cancellation_converted")
    assert state.return_case_id in converted.body
    [line] = [a for a in audit(shop, handle.id) if a.event == "return_requested"]
    assert line.actor == "backend"


async def test_a_declined_return_offer_closes_the_case_with_nothing_refunded(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    ship(shop, order_id)
    handle = await start(cases, cancellation(order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)

    await decline_return(client, handle.id)
    outcome = await handle.result()

    assert outcome.status is CaseStatus.CLOSED
    assert "declined" in outcome.reason
    assert refunds(shop, handle.id) == []
    assert order(shop, order_id).status == "shipped"
    assert len(emails(shop, handle.id, "cancellation_closed")) == 1
    assert "return_declined" in events(shop, handle.id)


async def test_an_unanswered_return_offer_closes_after_the_offer_wait_and_refuses_a_late_answer(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    ship(shop, order_id)
    handle = await start(cases, cancellation(order_id))
    offered = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert offered.offer_until is not None

    await env.sleep(timedelta(days=2, hours=23))
    still = await case_state(client, handle.id)
    assert still.status is CaseStatus.AWAITING_CUSTOMER
    outcome = await handle.result()

    assert outcome.status is CaseStatus.CLOSED
    assert "did not answer" in outcome.reason
    with pytest.raises(EventRefused) as late:
        await request_return(client, handle.id)
    assert late.value.kind == "OfferExpired"
    assert refunds(shop, handle.id) == []
    assert len(emails(shop, handle.id, "cancellation_closed")) == 1


async def test_an_order_cancelled_meanwhile_by_someone_else_is_not_refunded_twice(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop, big=True)
    first = await start(cases, cancellation(order_id))
    await status_of(client, first.id, CaseStatus.AWAITING_APPROVAL)
    ship(shop, order_id, "cancelled")  # cancelled in the order system by another route

    await approve(client, first.id)
    outcome = await first.result()

    assert outcome.status is CaseStatus.CLOSED
    assert "already cancelled" in outcome.reason
    assert refunds(shop, first.id) == []
    assert order(shop, order_id).reserved == 0


async def test_a_delivered_order_listing_no_items_closes_without_an_offer_or_refund(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    handle = await start(cases, cancellation("ORD-1002"))  # delivered, no lines

    outcome = await handle.result()

    assert outcome.status is CaseStatus.CLOSED
    assert "no items to return" in outcome.reason
    assert emails(shop, handle.id, "cancellation_return_offered") == []
    assert refunds(shop, handle.id) == []
