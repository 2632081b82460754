"""Activities under retry: a repeated attempt finds its own earlier work and pays once.

The gateways here are real implementations of the ``PaymentGateway`` protocol that wrap the
local one, handed to ``CaseActivities`` the way a company plugs in its own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.carrier import LocalCarrier
from activities.cases import CaseActivities
from activities.orders import LocalOrderSystem
from activities.payments import LocalPaymentGateway, PaymentGateway, PaymentUnavailable
from infra.db import LedgerEntry, Order, OutboxEmail, RefundReservation
from settings import Settings
from starter import case_state
from tests.activity_helpers import open_case
from tests.conftest import Cases, Shop
from worker import build_worker
from workflows.models import (
    CaseStatus,
    Outcome,
    RefundInstruction,
    RefundMethod,
    RefundRequest,
)
from workflows.rush_models import FeeCharge


@dataclass
class FlakyGateway:
    """Times out on its first ``failures`` calls; ``pays_before_failing`` models a timeout
    that came back after the money had already moved."""

    inner: PaymentGateway
    failures: int
    pays_before_failing: bool = False
    keys: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refund(self, instruction: RefundInstruction) -> str:
        with self._lock:
            self.keys.append(instruction.idempotency_key)
            attempt = len(self.keys)
        if attempt <= self.failures:
            if self.pays_before_failing:
                self.inner.refund(instruction)
            raise PaymentUnavailable(f"gateway timed out (call {attempt})")
        return self.inner.refund(instruction)

    def charge(self, charge: FeeCharge) -> str:
        return self.inner.charge(charge)


def case_activities(shop: Shop, settings: Settings, payments: PaymentGateway) -> CaseActivities:
    return CaseActivities(
        shop.db,
        orders=LocalOrderSystem(shop.db),
        payments=payments,
        carrier=LocalCarrier(shop.db),
        settings=settings,
    )


def instruction(case_id: str) -> RefundInstruction:
    return RefundInstruction(
        case_id=case_id,
        idempotency_key=f"{case_id}/refund",
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal("120.00"),
        method=RefundMethod.ORIGINAL_PAYMENT,
        issued_at=datetime.now(UTC),
    )


def ledger_rows(shop: Shop) -> list[tuple[str, str, Decimal]]:
    with shop.db.transaction() as session:
        rows = session.execute(
            select(LedgerEntry.idempotency_key, LedgerEntry.reference, LedgerEntry.amount)
        )
        return [(key, ref, amount) for key, ref, amount in rows]


def refunded(shop: Shop, order_id: str = "ORD-1001") -> Decimal:
    with shop.db.transaction() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.refunded


# ---- the activity itself, called as a retry would call it -------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_issue_refund_called_twice_pays_once(shop: Shop, activities: CaseActivities) -> None:
    open_case(activities, "refund-twice")
    first = activities.issue_refund(instruction("refund-twice"))
    second = activities.issue_refund(instruction("refund-twice"))
    assert second == first
    assert ledger_rows(shop) == [("refund-twice/refund", first.reference, Decimal("120.00"))]
    assert refunded(shop) == Decimal("120.00")


def test_a_retry_after_the_payment_was_recorded_does_not_ask_the_gateway_again(
    shop: Shop, settings: Settings
) -> None:
    gateway = FlakyGateway(LocalPaymentGateway(shop.db), failures=0)
    activities = case_activities(shop, settings, gateway)
    open_case(activities, "refund-once")
    first = activities.issue_refund(instruction("refund-once"))
    again = activities.issue_refund(instruction("refund-once"))
    assert again == first
    assert gateway.keys == ["refund-once/refund"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_gateway_outage_is_a_retryable_failure_that_records_nothing(
    shop: Shop, settings: Settings
) -> None:
    gateway = FlakyGateway(LocalPaymentGateway(shop.db), failures=1)
    activities = case_activities(shop, settings, gateway)
    open_case(activities, "refund-outage")
    with pytest.raises(ApplicationError) as failure:
        activities.issue_refund(instruction("refund-outage"))
    assert failure.value.type == "PaymentUnavailable"
    assert not failure.value.non_retryable
    assert ledger_rows(shop) == []
    assert refunded(shop) == Decimal("0.00")

    receipt = activities.issue_refund(instruction("refund-outage"))
    assert ledger_rows(shop) == [("refund-outage/refund", receipt.reference, Decimal("120.00"))]


def test_a_closed_card_is_a_final_decline(shop: Shop, activities: CaseActivities) -> None:
    open_case(activities, "refund-closed")
    closed = instruction("refund-closed").model_copy(
        update={"order_id": "ORD-2001", "customer_id": "C-200"}
    )
    with pytest.raises(ApplicationError) as failure:
        activities.issue_refund(closed)
    assert failure.value.type == "PaymentDeclined"
    assert failure.value.non_retryable
    assert ledger_rows(shop) == []


def test_a_payment_beyond_what_is_still_refundable_is_final(
    shop: Shop, activities: CaseActivities
) -> None:
    open_case(activities, "refund-too-much")
    too_much = instruction("refund-too-much").model_copy(update={"amount": Decimal("1200.01")})
    with pytest.raises(ApplicationError) as failure:
        activities.issue_refund(too_much)
    assert failure.value.type == "NotRefundable"
    assert failure.value.non_retryable
    assert ledger_rows(shop) == []


# ---- the same, through the worker and the retry policy -----------------------------------------


@dataclass
class FlakyWorld:
    cases: Cases
    gateway: FlakyGateway


@pytest.fixture
def gateway(shop: Shop, request: pytest.FixtureRequest) -> FlakyGateway:
    failures, pays_first = getattr(request, "param", (2, False))
    return FlakyGateway(
        LocalPaymentGateway(shop.db), failures=failures, pays_before_failing=pays_first
    )


@pytest.fixture
async def flaky(
    env: WorkflowEnvironment, shop: Shop, settings: Settings, gateway: FlakyGateway
) -> AsyncIterator[FlakyWorld]:
    activities = case_activities(shop, settings, gateway)
    async with build_worker(env.client, activities=activities, settings=settings):
        world = FlakyWorld(Cases(env.client, settings.task_queue), gateway)
        try:
            yield world
        finally:
            await world.cases.close_all()


def small_refund() -> RefundRequest:
    return RefundRequest(
        request_id=f"req-{uuid.uuid4().hex[:10]}",
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal("120.00"),
        reason="thawed on arrival",
        requested_by="agent-amy",
    )


async def issue_refund_attempts(cases: Cases, case_id: str) -> list[int]:
    """The attempt numbers of the issue_refund activity, as the history shows them."""
    history = await cases.client.get_workflow_handle(case_id).fetch_history()
    scheduled = {
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "issue_refund"
    }
    return [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


async def payment_tried_for(cases: Cases, case_id: str) -> timedelta:
    """From scheduling the payment to giving it up, in the case's (skipped) time."""
    history = await cases.client.get_workflow_handle(case_id).fetch_history()
    scheduled = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "issue_refund"
    ]
    [failed] = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
        and e.activity_task_failed_event_attributes.scheduled_event_id == scheduled[0].event_id
    ]
    return failed.event_time.ToDatetime() - scheduled[0].event_time.ToDatetime()


async def test_a_gateway_down_twice_is_retried_and_the_case_completes_with_one_payment(
    flaky: FlakyWorld, shop: Shop
) -> None:
    handle = await flaky.cases.refund(small_refund())
    outcome: Outcome = await handle.result()
    assert outcome.status is CaseStatus.COMPLETED
    assert len(flaky.gateway.keys) == 3
    assert await issue_refund_attempts(flaky.cases, handle.id) == [3]
    assert ledger_rows(shop) == [(f"{handle.id}/refund", outcome.reference, Decimal("120.00"))]
    assert refunded(shop) == Decimal("120.00")
    state = await case_state(flaky.cases.client, handle.id)
    assert [e.event for e in state.timeline].count("refund_started") == 1


@pytest.mark.parametrize("gateway", [(1, True)], indirect=True)
async def test_a_timeout_after_the_money_moved_is_retried_with_the_same_key(
    flaky: FlakyWorld, shop: Shop
) -> None:
    handle = await flaky.cases.refund(small_refund())
    outcome: Outcome = await handle.result()
    assert outcome.status is CaseStatus.COMPLETED
    # The gateway saw the same idempotency key on every attempt, so it paid once.
    assert flaky.gateway.keys == [f"{handle.id}/refund"] * 2
    assert ledger_rows(shop) == [(f"{handle.id}/refund", outcome.reference, Decimal("120.00"))]
    with shop.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


# ---- an outage that outlasts PAYMENT_RETRY_FOR: a person must act -------------------------------


@pytest.mark.parametrize("gateway", [(10_000, False)], indirect=True)
async def test_a_gateway_outage_longer_than_the_retry_window_escalates_to_accounting(
    flaky: FlakyWorld, shop: Shop, settings: Settings
) -> None:
    assert settings.payment_retry_for == timedelta(hours=1)  # the default, recorded per case
    handle = await flaky.cases.refund(small_refund())
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.NEEDS_ATTENTION
    assert "payment gateway unavailable" in outcome.reason and "Accounting" in outcome.reason
    assert (
        timedelta(minutes=55)
        <= await payment_tried_for(flaky.cases, handle.id)
        <= timedelta(hours=1)
    )
    attempts = await issue_refund_attempts(flaky.cases, handle.id)
    assert len(attempts) == 1 and attempts[0] > 5  # retried with backoff, then given up
    assert ledger_rows(shop) == []
    with shop.db.transaction() as session:
        order = session.get(Order, "ORD-1001")
        assert order is not None
        assert (order.refunded, order.reserved) == (Decimal("0.00"), Decimal("0.00"))
        [reservation] = session.scalars(select(RefundReservation))
        assert (reservation.idempotency_key, reservation.status) == (
            f"{handle.id}/refund",
            "released",
        )
        [email] = session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "payment_unavailable")
        )
    assert email.to_address == "accounting@exoticmeats.com"
    assert f"{handle.id}/refund" in email.body  # what Accounting checks with the gateway
    state = await case_state(flaky.cases.client, handle.id)
    assert state.status is CaseStatus.NEEDS_ATTENTION
    assert [e.event for e in state.timeline][-3:] == [
        "refund_released",
        "email_payment_unavailable",
        "case_needs_attention",
    ]
