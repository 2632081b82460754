"""OrderChangeWorkflow (SOPs Order Modifications, Manager Authorization: commercial pricing
adjustments), specified against the time-skipping server and a real database."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.payments import PaymentGateway, PaymentUnavailable
from infra.db import Database
from starter import EventRefused, decide, start_case
from tests.case_helpers import (
    EASTERN,
    FRIDAY,
    MONDAY,
    TUESDAY,
    activities_in_order,
    audit,
    emails,
    events,
    eventually,
    move_to,
    sleep_until,
)
from tests.conftest import Cases, Shop
from tests.order_change_helpers import (
    NEW_ADDRESS,
    TOTAL,
    accept,
    add_commercial_customer,
    approval,
    change,
    change_record,
    change_state,
    charges,
    decline,
    lines,
    notes,
    order,
    processing_order,
    refunds,
    ship,
    status_of,
    stored_request,
)
from worker import build_activities, build_worker
from workflows.models import CaseStatus, Decision, DecisionKind
from workflows.order_change_models import OrderChangeRequest
from workflows.rush_models import FeeCharge

UNCHANGED = {"BISON-RIBEYE": (2, Decimal("60.00")), "ELK-SAUSAGE": (4, Decimal("20.00"))}


async def start(cases: Cases, request: OrderChangeRequest) -> WorkflowHandle[Any, Any]:
    return await cases.start(start_case, request)


# ---- quantity and item changes: the difference, charged or refunded once ----------------


async def test_a_quantity_increase_charges_the_difference_once_and_applies_the_change(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = processing_order(shop)
    handle = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=6))
    quoted = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert quoted.difference == Decimal("40.00")
    [quote] = emails(shop, handle.id, "order_change_quote")
    assert "ELK-SAUSAGE: 4 becomes 6" in quote.body
    assert "40.00" in quote.body
    assert lines(shop, order_id) == UNCHANGED  # nothing happens before the customer agrees

    await accept(client, handle.id)

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.COMPLETED)
    [charge] = charges(shop, handle.id)
    assert charge.amount == Decimal("40.00")
    assert charge.idempotency_key == f"{handle.id}/change"
    assert final.charge_reference == charge.reference and final.applied
    assert order(shop, order_id).total == TOTAL + Decimal("40.00")
    assert lines(shop, order_id)["ELK-SAUSAGE"] == (6, Decimal("20.00"))
    [note] = notes(shop, handle.id)
    assert note.kind == "change_reason" and note.order_id == order_id
    assert "the customer's dinner party grew" in note.text
    record = change_record(shop, handle.id)
    assert record is not None and record.difference == Decimal("40.00")
    assert refunds(shop, handle.id) == []
    assert len(emails(shop, handle.id, "order_change_confirmed")) == 1
    # Charged before applied: a declined payment would have changed nothing.
    done = await activities_in_order(handle)
    assert done.index("charge_order_change") < done.index("apply_order_change")
    assert [e for e in events(shop, handle.id) if e.startswith("change_")] == [
        "change_quoted",
        "change_quote_sent",
        "change_accepted",
        "change_charged",
        "change_applied",
    ]


async def test_a_quantity_decrease_refunds_the_difference_once_after_applying(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = processing_order(shop)
    handle = await start(cases, change(order_id, "quantity", sku="BISON-RIBEYE", quantity=0))
    quoted = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert quoted.difference == Decimal("-120.00")

    await accept(client, handle.id)

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.COMPLETED)
    [refund] = refunds(shop, handle.id)
    assert refund.amount == Decimal("120.00")
    assert final.refund_reference == refund.reference
    assert order(shop, order_id).refunded == Decimal("120.00")
    assert order(shop, order_id).total == TOTAL
    assert lines(shop, order_id) == {"ELK-SAUSAGE": (4, Decimal("20.00"))}
    assert charges(shop, handle.id) == []
    done = await activities_in_order(handle)
    assert done.index("apply_order_change") < done.index("issue_refund")


async def test_an_item_swap_is_priced_at_the_catalog_price_of_the_new_item(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = processing_order(shop)
    handle = await start(cases, change(order_id, "item", sku="ELK-SAUSAGE", new_sku="ELK-LOIN"))
    quoted = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert quoted.difference == Decimal("60.00")  # 4 x 35.00 - 4 x 20.00

    await accept(client, handle.id)

    await handle.result()
    assert lines(shop, order_id) == {
        "BISON-RIBEYE": (2, Decimal("60.00")),
        "ELK-LOIN": (4, Decimal("35.00")),
    }
    [charge] = charges(shop, handle.id)
    assert charge.amount == Decimal("60.00")


async def test_a_declined_quote_changes_and_charges_nothing(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = processing_order(shop)
    handle = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=6))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)

    await decline(client, handle.id)

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.DECLINED)
    assert final.answer == "declined" and not final.applied
    assert lines(shop, order_id) == UNCHANGED
    assert charges(shop, handle.id) == [] and change_record(shop, handle.id) is None
    assert len(emails(shop, handle.id, "order_change_declined")) == 1


async def test_a_declined_payment_leaves_the_order_unchanged_and_tells_the_customer(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = processing_order(shop, payment_account="closed")
    handle = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=6))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)

    await accept(client, handle.id)

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.DECLINED)
    assert final.outcome is not None and "declined" in final.outcome.reason
    assert lines(shop, order_id) == UNCHANGED
    assert change_record(shop, handle.id) is None and notes(shop, handle.id) == []
    assert charges(shop, handle.id) == []
    assert order(shop, order_id).total == TOTAL
    assert len(emails(shop, handle.id, "order_change_payment_declined")) == 1


# ---- address changes -----------------------------------------------------------------------


async def test_an_address_change_costs_nothing_and_sets_the_shipping_address_at_once(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = processing_order(shop)
    handle = await start(cases, change(order_id, "address", address=NEW_ADDRESS))

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.COMPLETED)

    assert final.difference == Decimal("0.00") and final.accept_by is None
    assert order(shop, order_id).shipping_address == NEW_ADDRESS
    assert order(shop, order_id).total == TOTAL
    assert charges(shop, handle.id) == [] and refunds(shop, handle.id) == []
    assert emails(shop, handle.id, "order_change_quote") == []  # nothing to accept
    [confirmation] = emails(shop, handle.id, "order_change_confirmed")
    assert "shipping address" in confirmation.body
    [note] = notes(shop, handle.id)
    assert note.text.startswith("the shipping address")
    # The address lives on the order only: not in the audit trail, the case row, the record.
    assert all(NEW_ADDRESS not in str(line.detail) for line in audit(shop, handle.id))
    assert stored_request(shop, handle.id)["address"] == "(withheld)"
    record = change_record(shop, handle.id)
    assert record is not None and "address" not in record.detail
    assert NEW_ADDRESS not in confirmation.body and NEW_ADDRESS not in note.text


# ---- what cannot change --------------------------------------------------------------------


@pytest.mark.parametrize("status", ["shipped", "delivered", "cancelled"])
async def test_a_change_is_refused_once_the_order_left_processing(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop, status: str
) -> None:
    order_id = processing_order(shop, status=status)
    handle = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=6))

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.REJECTED)

    assert final.outcome is not None and "can no longer be changed" in final.outcome.reason
    [refused] = emails(shop, handle.id, "order_change_refused")
    assert "can no longer be changed" in refused.body
    assert lines(shop, order_id) == UNCHANGED
    assert change_record(shop, handle.id) is None and charges(shop, handle.id) == []
    assert "quote_order_change" not in await activities_in_order(handle)


async def test_removing_the_last_item_is_refused_as_a_cancellation(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = processing_order(shop)
    first = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=0))
    await status_of(client, first.id, CaseStatus.AWAITING_CUSTOMER)
    await accept(client, first.id)
    await first.result()

    handle = await start(cases, change(order_id, "quantity", sku="BISON-RIBEYE", quantity=0))

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.REJECTED)
    assert final.outcome is not None and "cancellation" in final.outcome.reason
    assert lines(shop, order_id) == {"BISON-RIBEYE": (2, Decimal("60.00"))}


async def test_the_order_shipping_after_the_acceptance_refuses_the_change_and_charges_nothing(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = processing_order(shop)
    handle = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=6))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    ship(shop, order_id)  # the warehouse did not wait for the customer's answer

    await accept(client, handle.id)

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.REJECTED)
    assert final.answer == "accepted" and not final.applied
    assert final.outcome is not None and "shipped" in final.outcome.reason
    assert charges(shop, handle.id) == [] and refunds(shop, handle.id) == []
    assert order(shop, order_id).total == TOTAL
    assert lines(shop, order_id) == UNCHANGED
    assert change_record(shop, handle.id) is None
    assert len(emails(shop, handle.id, "order_change_refused")) == 1


async def test_a_decrease_meeting_a_shipped_order_refunds_nothing(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = processing_order(shop)
    handle = await start(cases, change(order_id, "quantity", sku="BISON-RIBEYE", quantity=1))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    ship(shop, order_id)

    await accept(client, handle.id)

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.REJECTED)
    assert final.outcome is not None and "shipped" in final.outcome.reason
    assert refunds(shop, handle.id) == [] and order(shop, order_id).refunded == Decimal("0")
    assert lines(shop, order_id) == UNCHANGED
    assert "issue_refund" not in await activities_in_order(handle)


@dataclass
class TimesOutAfterCharging:
    """A gateway whose first charge moves the money and then times out (the worst retry)."""

    inner: PaymentGateway
    calls: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refund(self, instruction: Any) -> str:
        return self.inner.refund(instruction)

    def charge(self, charge: FeeCharge) -> str:
        with self._lock:
            self.calls.append(charge.idempotency_key)
            first = len(self.calls) == 1
        reference = self.inner.charge(charge)
        if first:
            raise PaymentUnavailable("the gateway took the charge but the answer timed out")
        return reference


async def test_the_difference_is_charged_once_when_the_charge_is_retried(
    env: WorkflowEnvironment, client: Client, shop: Shop, settings: Any
) -> None:
    activities = build_activities(shop.db, settings)
    gateway = TimesOutAfterCharging(activities.payments)
    activities.payments = gateway
    async with build_worker(env.client, activities=activities, settings=settings):
        cases = Cases(client, settings.task_queue)
        try:
            await move_to(env, TUESDAY, 10)
            order_id = processing_order(shop)
            handle = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=6))
            await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
            await accept(client, handle.id)
            await handle.result()
            await status_of(client, handle.id, CaseStatus.COMPLETED)
        finally:
            await cases.close_all()

    assert gateway.calls == [f"{handle.id}/change"] * 2  # the retry asked again...
    [charge] = charges(shop, handle.id)  # ...and one charge stands
    assert charge.amount == Decimal("40.00")
    assert order(shop, order_id).total == TOTAL + Decimal("40.00")
    assert events(shop, handle.id).count("change_charged") == 1


@dataclass
class ShipsWhileCharging:
    """A gateway during whose charge the warehouse ships the order: the narrowest window."""

    inner: PaymentGateway
    db: Database
    calls: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refund(self, instruction: Any) -> str:
        return self.inner.refund(instruction)

    def charge(self, charge: FeeCharge) -> str:
        with self._lock:
            self.calls.append(charge.idempotency_key)
        reference = self.inner.charge(charge)
        ship(Shop(self.db), charge.order_id)
        return reference


async def test_the_order_shipping_while_the_change_is_charged_refunds_the_charge_once(
    env: WorkflowEnvironment, client: Client, shop: Shop, settings: Any
) -> None:
    activities = build_activities(shop.db, settings)
    gateway = ShipsWhileCharging(activities.payments, shop.db)
    activities.payments = gateway
    async with build_worker(env.client, activities=activities, settings=settings):
        cases = Cases(client, settings.task_queue)
        try:
            await move_to(env, TUESDAY, 10)
            order_id = processing_order(shop)
            handle = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=6))
            await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
            await accept(client, handle.id)
            await handle.result()
            final = await status_of(client, handle.id, CaseStatus.REJECTED)
        finally:
            await cases.close_all()

    assert gateway.calls == [f"{handle.id}/change"]
    assert final.outcome is not None and "refunded" in final.outcome.reason
    [charge] = charges(shop, handle.id)
    [refund] = refunds(shop, handle.id)
    assert charge.amount == refund.amount == Decimal("40.00")
    assert order(shop, order_id).refunded == Decimal("40.00")
    assert lines(shop, order_id) == UNCHANGED
    assert change_record(shop, handle.id) is None and notes(shop, handle.id) == []


class GatewayRejectsTheFormat:
    """A gateway answering a protocol error nobody planned for, marked final by its adapter."""

    def refund(self, instruction: Any) -> str:
        raise self._refusal()

    def charge(self, charge: FeeCharge) -> str:
        raise self._refusal()

    @staticmethod
    def _refusal() -> ApplicationError:
        return ApplicationError(
            "gateway answered 400: unknown field 'amount'",
            type="GatewayProtocolError",
            non_retryable=True,
        )


async def test_a_charge_failing_for_an_unplanned_reason_leaves_the_order_to_accounting(
    env: WorkflowEnvironment, client: Client, shop: Shop, settings: Any
) -> None:
    activities = build_activities(shop.db, settings)
    activities.payments = GatewayRejectsTheFormat()
    async with build_worker(env.client, activities=activities, settings=settings):
        cases = Cases(client, settings.task_queue)
        try:
            await move_to(env, TUESDAY, 10)
            order_id = processing_order(shop)
            handle = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=6))
            await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
            await accept(client, handle.id)
            await handle.result()
            final = await status_of(client, handle.id, CaseStatus.NEEDS_ATTENTION)
        finally:
            await cases.close_all()

    assert final.outcome is not None and "unknown field 'amount'" in final.outcome.reason
    told = {email.to_address for email in emails(shop, handle.id, "case_needs_attention")}
    assert told == {"csmanager@exoticmeats.com", "accounting@exoticmeats.com"}
    assert charges(shop, handle.id) == [] and change_record(shop, handle.id) is None
    assert lines(shop, order_id) == UNCHANGED


# ---- the acceptance window, in business time ------------------------------------------------


async def quoted_friday_evening(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> tuple[WorkflowHandle[Any, Any], str, datetime]:
    await move_to(env, FRIDAY, 19)
    order_id = processing_order(shop)
    handle = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=6))
    quoted = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert quoted.accept_by is not None
    # One business hour on Friday (19:00-20:00), the other seven from Monday's opening.
    local = quoted.accept_by.astimezone(EASTERN)
    assert (local.weekday(), local.strftime("%H:%M")) == (MONDAY, "15:00")
    return handle, order_id, quoted.accept_by


async def test_a_friday_evening_quote_can_be_accepted_a_minute_before_its_monday_deadline(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle, order_id, accept_by = await quoted_friday_evening(env, client, cases, shop)

    await sleep_until(env, accept_by - timedelta(minutes=1))
    answered = await accept(client, handle.id)

    assert answered.answer == "accepted"
    await handle.result()
    await status_of(client, handle.id, CaseStatus.COMPLETED)
    assert len(charges(shop, handle.id)) == 1
    assert lines(shop, order_id)["ELK-SAUSAGE"] == (6, Decimal("20.00"))


async def test_an_acceptance_a_minute_after_the_deadline_is_refused_and_changes_nothing(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle, order_id, accept_by = await quoted_friday_evening(env, client, cases, shop)

    await sleep_until(env, accept_by + timedelta(minutes=1))
    with pytest.raises(EventRefused) as refused:
        await accept(client, handle.id)

    assert refused.value.kind == "QuoteExpired"
    assert "expired" in refused.value.message
    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.DECLINED)
    assert final.answer is None
    assert charges(shop, handle.id) == [] and change_record(shop, handle.id) is None
    assert lines(shop, order_id) == UNCHANGED
    assert len(emails(shop, handle.id, "order_change_quote_expired")) == 1


# ---- commercial price adjustments ----------------------------------------------------------


async def test_a_commercial_price_adjustment_waits_for_a_manager_before_the_quote(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    customer = add_commercial_customer(shop)
    order_id = processing_order(shop, customer_id=customer)
    request = change(
        order_id,
        "quantity",
        customer_id=customer,
        sku="ELK-SAUSAGE",
        quantity=10,
        price_adjustment="25.00",
    )
    handle = await start(cases, request)
    waiting = await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    assert waiting.commercial and waiting.approval is not None
    row = await eventually(lambda: [r for r in [approval(shop, handle.id)] if r])
    assert (row[0].kind, row[0].rule, row[0].amount) == (
        "pricing_adjustment",
        "COMMERCIAL_PRICING",
        Decimal("25.00"),
    )
    assert emails(shop, handle.id, "order_change_quote") == []  # not before it is authorized

    await decide(
        client,
        handle.id,
        Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE, event_id="ok-1"),
    )
    quoted = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert quoted.difference == Decimal("95.00")  # 6 x 20.00 - 25.00
    await accept(client, handle.id)

    await handle.result()
    await status_of(client, handle.id, CaseStatus.COMPLETED)
    [charge] = charges(shop, handle.id)
    assert charge.amount == Decimal("95.00")


async def test_a_price_adjustment_refused_by_the_manager_rejects_the_change(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    customer = add_commercial_customer(shop)
    order_id = processing_order(shop, customer_id=customer)
    handle = await start(
        cases,
        change(
            order_id, "address", customer_id=customer, address=NEW_ADDRESS, price_adjustment="5.00"
        ),
    )
    await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)

    await decide(
        client,
        handle.id,
        Decision(
            approver_id="mgr-mia", decision=DecisionKind.REJECT, note="list price", event_id="no-1"
        ),
    )

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.REJECTED)
    assert final.outcome is not None and "list price" in final.outcome.reason
    assert order(shop, order_id).shipping_address is None
    assert refunds(shop, handle.id) == []


async def test_a_price_adjustment_for_a_customer_without_a_commercial_account_is_rejected(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = processing_order(shop)
    request = change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=6, price_adjustment="5.00")
    handle = await start(cases, request)

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.REJECTED)

    assert final.outcome is not None and "commercial accounts" in final.outcome.reason
    assert approval(shop, handle.id) is None
    assert len(emails(shop, handle.id, "order_change_refused")) == 1
    assert lines(shop, order_id) == UNCHANGED


async def test_a_signal_answer_is_taken_like_the_update_and_a_repeat_is_ignored(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = processing_order(shop)
    handle = await start(cases, change(order_id, "quantity", sku="ELK-SAUSAGE", quantity=5))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)

    await handle.signal("change_accepted", {"event_id": "sig-1", "answered_by": "agent-amy"})
    await handle.signal("change_accepted", {"event_id": "sig-1", "answered_by": "agent-amy"})

    await handle.result()
    final = await change_state(client, handle.id, lambda s: s.status.is_final)
    assert final.status is CaseStatus.COMPLETED
    assert len(charges(shop, handle.id)) == 1
    assert events(shop, handle.id).count("change_accepted") == 1
