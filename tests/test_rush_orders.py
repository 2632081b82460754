"""RushOrderWorkflow (SOPs Rush Orders, Shipping Issues, VIP Customer Handling), specified
against the time-skipping server and a real database."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.payments import PaymentGateway, PaymentUnavailable
from starter import EventRefused, start_case
from tests.case_helpers import (
    EASTERN,
    FRIDAY,
    MONDAY,
    TUESDAY,
    activities_in_order,
    emails,
    events,
    eventually,
    move_to,
    sleep_until,
    timers_started,
)
from tests.conftest import Cases, Shop
from tests.freight_claim_helpers import claim_state as freight_claim_state
from tests.rush_helpers import (
    FEE,
    accept,
    carrier_requests,
    charges,
    decline,
    order,
    refunds,
    rush,
    rush_state,
    status_of,
    stocked_order,
)
from worker import build_activities, build_worker
from workflows.models import CaseStatus
from workflows.rush_models import FeeCharge, RushOrderRequest

# Both supervisors of the shop: Supervisor Escalation briefs every one of them.
SUPERVISORS = {"sup-sam@exoticmeats.com", "sup-low@exoticmeats.com"}


async def start(cases: Cases, request: RushOrderRequest) -> WorkflowHandle[Any, Any]:
    return await cases.start(start_case, request)


def eastern(instant: datetime) -> datetime:
    return instant.astimezone(EASTERN)


# ---- the acceptance window ---------------------------------------------------------------


async def test_a_quote_sent_friday_evening_can_be_accepted_monday_at_1h59_of_business_time(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, FRIDAY, 19)
    order_id = stocked_order(shop)
    handle = await start(cases, rush(order_id))
    quoted = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert quoted.accept_by is not None
    # One business hour on Friday (19:00-20:00), the second from Monday's opening.
    assert eastern(quoted.accept_by).weekday() == MONDAY
    assert eastern(quoted.accept_by).strftime("%H:%M") == "09:00"
    assert quoted.fee == Decimal(FEE)

    await sleep_until(env, quoted.accept_by - timedelta(minutes=1))
    answered = await accept(client, handle.id)

    assert answered.fee_answer == "accepted"
    confirmed = await status_of(client, handle.id, CaseStatus.PRIORITY)
    [charge] = charges(shop, handle.id)
    assert charge.amount == Decimal(FEE)
    assert order(shop, order_id).total == Decimal("200.00") + Decimal(FEE)
    assert order(shop, order_id).priority_case_id == handle.id
    assert confirmed.promised_on is not None
    assert confirmed.charge_reference == charge.reference
    assert len(await eventually(lambda: emails(shop, handle.id, "rush_confirmed"))) == 1


async def test_an_acceptance_at_2h01_of_business_time_is_refused_and_changes_nothing(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, FRIDAY, 19)
    order_id = stocked_order(shop)
    handle = await start(cases, rush(order_id))
    quoted = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert quoted.accept_by is not None

    await sleep_until(env, quoted.accept_by + timedelta(minutes=1))
    with pytest.raises(EventRefused) as refused:
        await accept(client, handle.id)

    assert refused.value.kind == "QuoteExpired"
    assert "standard" in refused.value.message
    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.DECLINED)
    assert final.fee_answer is None
    assert charges(shop, handle.id) == []
    assert order(shop, order_id).total == Decimal("200.00")
    assert order(shop, order_id).priority_case_id is None
    assert len(emails(shop, handle.id, "rush_quote_expired")) == 1
    assert "rush_confirmed" not in [e.template for e in emails(shop, handle.id)]


async def test_an_acceptance_after_the_same_day_cut_off_moves_the_promise_and_says_so(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 13)
    handle = await start(cases, rush(stocked_order(shop)))
    quoted = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert quoted.ships_on is not None and quoted.promised_on is not None
    assert quoted.ships_on.weekday() == TUESDAY
    quoted_promise = quoted.promised_on

    await env.sleep(timedelta(hours=1, minutes=30))  # 14:30: in the window, past the cut-off
    await accept(client, handle.id)

    confirmed = await status_of(client, handle.id, CaseStatus.PRIORITY)
    assert confirmed.promised_on == quoted_promise + timedelta(days=1)
    [confirmation] = await eventually(lambda: emails(shop, handle.id, "rush_confirmed"))
    assert "promise_moved" in events(shop, handle.id)
    assert "moved" in confirmation.body
    assert f"{confirmed.promised_on:%A %B}" in confirmation.body


async def test_a_declined_fee_keeps_standard_shipping_and_charges_nothing(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = stocked_order(shop)
    handle = await start(cases, rush(order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)

    await decline(client, handle.id)

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.DECLINED)
    assert final.fee_answer == "declined"
    assert charges(shop, handle.id) == []
    assert order(shop, order_id).priority_case_id is None
    assert len(emails(shop, handle.id, "rush_declined")) == 1
    assert "fee_declined" in events(shop, handle.id)


# ---- availability and refusals -------------------------------------------------------------


async def test_items_not_in_stock_are_named_with_their_restock_date_and_never_charged(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = stocked_order(shop)
    shop.set_stock("ELK-SAUSAGE", 3, restock_on=date(2031, 1, 15))
    handle = await start(cases, rush(order_id))

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.UNAVAILABLE)

    assert "ELK-SAUSAGE" in final.step
    assert charges(shop, handle.id) == []
    [email] = emails(shop, handle.id, "rush_unavailable")
    assert "ELK-SAUSAGE: 3 of 4 in stock" in email.body
    assert "Wednesday January 15" in email.body
    assert "BISON-RIBEYE" not in email.body
    assert "charge_rush_fee" not in await activities_in_order(handle)


@pytest.mark.parametrize("status", ["shipped", "cancelled"])
async def test_an_order_already_shipped_or_cancelled_is_refused(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop, status: str
) -> None:
    handle = await start(cases, rush(stocked_order(shop, status=status)))

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.UNAVAILABLE)

    assert (final.outcome and status in final.outcome.reason) or status in final.step
    assert len(emails(shop, handle.id, "rush_refused")) == 1
    assert charges(shop, handle.id) == []


async def test_a_declined_fee_payment_ends_the_case_declined_with_the_customer_told(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = stocked_order(shop, payment_account="closed")
    handle = await start(cases, rush(order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    await accept(client, handle.id)

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.DECLINED)

    assert final.outcome is not None and "declined" in final.outcome.reason
    assert charges(shop, handle.id) == []
    assert order(shop, order_id).total == Decimal("200.00")
    assert order(shop, order_id).priority_case_id is None
    assert len(emails(shop, handle.id, "rush_payment_declined")) == 1


# ---- the fee, charged once ------------------------------------------------------------------


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


async def test_the_fee_is_charged_once_when_the_charge_is_retried(
    env: WorkflowEnvironment, client: Client, shop: Shop, settings: Any
) -> None:
    activities = build_activities(shop.db, settings)
    gateway = TimesOutAfterCharging(activities.payments)
    activities.payments = gateway
    async with build_worker(env.client, activities=activities, settings=settings):
        cases = Cases(client, settings.task_queue)
        try:
            await move_to(env, TUESDAY, 10)
            order_id = stocked_order(shop)
            handle = await start(cases, rush(order_id))
            await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
            await accept(client, handle.id)
            await status_of(client, handle.id, CaseStatus.PRIORITY)
        finally:
            await cases.close_all()

    assert gateway.calls == [f"{handle.id}/rush-fee"] * 2  # the retry asked again...
    [charge] = charges(shop, handle.id)  # ...and one charge stands
    assert charge.amount == Decimal(FEE)
    assert order(shop, order_id).total == Decimal("200.00") + Decimal(FEE)
    assert events(shop, handle.id).count("fee_charged") == 1


# ---- VIP customers --------------------------------------------------------------------------


async def test_a_vip_rush_has_its_fee_waived_runs_at_top_priority_and_is_reported(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = stocked_order(shop, customer_id="C-200")
    handle = await start(cases, rush(order_id, customer_id="C-200"))
    quoted = await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    assert quoted.vip and quoted.fee_waived and quoted.fee == Decimal("0.00")
    [quote] = emails(shop, handle.id, "rush_quote")
    assert "waived" in quote.body

    await accept(client, handle.id)
    [report] = await eventually(lambda: emails(shop, handle.id, "rush_vip_report"))

    assert charges(shop, handle.id) == []
    assert order(shop, order_id).priority_case_id == handle.id
    assert report.to_address == "csmanager@exoticmeats.com"
    history = [event async for event in handle.fetch_history_events()]
    assert history[0].workflow_execution_started_event_attributes.priority.priority_key == 2
    scheduled = {
        event.activity_task_scheduled_event_attributes.activity_type.name: (
            event.activity_task_scheduled_event_attributes.priority.priority_key
        )
        for event in history
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    # The case's own priority until the customer is known to be a VIP, then the top one.
    assert scheduled["check_rush_availability"] in (0, 2)
    assert scheduled["send_notice"] == 1
    assert scheduled["flag_priority"] == 1


# ---- delivery follow-up ---------------------------------------------------------------------


async def accepted_case(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> tuple[WorkflowHandle[Any, Any], str]:
    """A rush accepted Tuesday 10:00: ships Tuesday, promised Wednesday (due 20:00)."""
    await move_to(env, TUESDAY, 10)
    order_id = stocked_order(shop)
    handle = await start(cases, rush(order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    await accept(client, handle.id)
    state = await status_of(client, handle.id, CaseStatus.PRIORITY)
    assert state.promised_on is not None and state.promised_on.weekday() == TUESDAY + 1
    return handle, order_id


async def test_a_delivered_event_ends_the_wait_early_and_completes_the_case(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle, _ = await accepted_case(env, client, cases, shop)
    await timers_started(handle)

    await handle.signal("delivered", {"event_id": "dlv-1", "tracking_number": "1Z42"})

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.COMPLETED)
    assert final.outcome is not None and final.outcome.reason == "delivered on time"
    assert "track_delivery" not in await activities_in_order(handle)
    assert len(emails(shop, handle.id, "rush_delivered")) == 1
    assert refunds(shop, handle.id) == []


async def test_an_on_time_delivery_found_by_the_follow_up_completes_the_case(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle, order_id = await accepted_case(env, client, cases, shop)
    shop.set_shipment(order_id, "delivered", delivered_at=datetime.now(UTC))

    await env.sleep(timedelta(days=1, hours=12))  # past Wednesday 20:00

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.COMPLETED)
    assert final.delivery is not None and final.delivery.value == "delivered"
    assert (await activities_in_order(handle)).count("track_delivery") == 1
    assert refunds(shop, handle.id) == []


async def test_a_late_delivery_refunds_the_fee_once_and_escalates_after_two_business_days(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle, order_id = await accepted_case(env, client, cases, shop)

    await env.sleep(timedelta(days=1, hours=12))  # Wednesday 22:00: the promise is missed
    await eventually(lambda: emails(shop, handle.id, "rush_late"))
    late = await status_of(client, handle.id, CaseStatus.LATE)
    assert late.fee_refunded
    assert [r.kind for r in carrier_requests(shop, handle.id)] == ["investigation"]
    assert not late.escalated

    # Thursday's and Friday's checks: still nothing. Friday 20:00 is two business days late.
    await env.sleep(timedelta(days=2))
    escalated = await rush_state(client, handle.id, lambda s: s.escalated)
    assert escalated.status is CaseStatus.LATE
    briefings = await eventually(lambda: emails(shop, handle.id, "rush_late_escalation"))
    assert {e.to_address for e in briefings} == SUPERVISORS
    assert (await activities_in_order(handle)).count("track_delivery") >= 3

    await handle.signal("delivered", {"event_id": "dlv-late"})

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.COMPLETED)
    assert final.outcome is not None
    assert final.outcome.reason == "delivered late; the rush fee was refunded"
    [refund] = refunds(shop, handle.id)  # once, however many checks found it late
    assert refund.amount == Decimal(FEE)
    assert order(shop, order_id).refunded == Decimal(FEE)
    assert len(emails(shop, handle.id, "rush_late_escalation")) == len(SUPERVISORS)
    assert len(emails(shop, handle.id, "rush_delivered_late")) == 1


async def test_a_missed_delivery_arranges_a_redelivery_per_attempt(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle, order_id = await accepted_case(env, client, cases, shop)
    shop.set_shipment(order_id, "attempted", attempts=1)

    await env.sleep(timedelta(days=1, hours=12))
    await rush_state(client, handle.id, lambda s: s.redeliveries == 1)
    await handle.signal("delivery_attempted", {"event_id": "att-2"})
    state = await rush_state(client, handle.id, lambda s: s.redeliveries == 2)
    await eventually(lambda: emails(shop, handle.id, "rush_redelivery")[1:])

    assert state.status is CaseStatus.LATE
    kinds = [r.kind for r in carrier_requests(shop, handle.id)]
    assert kinds == ["investigation", "redelivery", "redelivery"]
    assert len(emails(shop, handle.id, "rush_redelivery")) == 2


async def test_a_parcel_the_carrier_lost_is_handed_to_the_cs_manager_for_a_freight_claim(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle, order_id = await accepted_case(env, client, cases, shop)
    shop.set_shipment(order_id, "lost")

    await env.sleep(timedelta(days=1, hours=12))

    await handle.result()
    final = await status_of(client, handle.id, CaseStatus.CLOSED)
    claim_id = final.freight_claim_id
    assert claim_id is not None and claim_id in (final.outcome.reason if final.outcome else "")
    cases.handles.append(client.get_workflow_handle(claim_id))  # it outlives this case
    # The claim: the parcel lost, linked to this case, for what the order can still refund
    # (its 200.00: the rush fee was charged and refunded already), refunded at once.
    claimed = await freight_claim_state(
        client, claim_id, lambda s: s.status is CaseStatus.AWAITING_CARRIER
    )
    assert (claimed.linked_case_id, claimed.kind, claimed.order_id) == (handle.id, "lost", order_id)
    assert claimed.amount == Decimal("200.00") and claimed.tracking_number == "1Z999"
    assert [entry.amount for entry in refunds(shop, claim_id)] == [Decimal("200.00")]
    [handoff] = emails(shop, handle.id, "rush_lost")
    assert handoff.to_address == "csmanager@exoticmeats.com" and claim_id in handoff.body
    assert len(emails(shop, handle.id, "rush_lost_customer")) == 1
    assert len(refunds(shop, handle.id)) == 1
