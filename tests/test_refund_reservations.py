"""Paying money back under concurrency: one order never pays out more than its total.

Every refund goes through one mechanism (``RefundLedger`` behind the ``issue_refund``
activity): the amount is reserved on the order atomically before the gateway is called, and
recording the payment moves it from reserved to refunded in one transaction. These specs hit
it from many threads at once, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from temporalio.exceptions import ApplicationError

from activities.cases import CaseActivities
from activities.payments import Held, RefundLedger
from infra.db import LedgerEntry, Order, RefundReservation
from tests.conftest import Shop
from tests.races import at_once
from workflows.models import CaseOpening, CaseType, RefundInstruction, RefundMethod

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


def open_cases(activities: CaseActivities, order_id: str, amounts: list[Decimal]) -> list[str]:
    case_ids = []
    for index, amount in enumerate(amounts):
        case_id = f"refund-{order_id}-{index}"
        activities.open_case(
            CaseOpening(
                case_id=case_id,
                case_type=CaseType.REFUND,
                order_id=order_id,
                customer_id="C-100",
                amount=amount,
                requested_by="agent-amy",
                request={},
                opened_at=datetime.now(UTC),
            )
        )
        case_ids.append(case_id)
    return case_ids


def instruction(case_id: str, order_id: str, amount: Decimal) -> RefundInstruction:
    return RefundInstruction(
        case_id=case_id,
        idempotency_key=f"{case_id}/refund",
        order_id=order_id,
        customer_id="C-100",
        amount=amount,
        method=RefundMethod.ORIGINAL_PAYMENT,
        issued_at=datetime.now(UTC),
    )


def paying(
    activities: CaseActivities, case_id: str, order_id: str, amount: Decimal
) -> Callable[[], object]:
    return lambda: activities.issue_refund(instruction(case_id, order_id, amount))


def money(shop: Shop, order_id: str) -> tuple[Decimal, Decimal, Decimal]:
    """The order's refunded and reserved amounts, and what its ledger rows add up to."""
    with shop.db.transaction() as session:
        order = session.get(Order, order_id)
        assert order is not None
        amounts = session.scalars(
            select(LedgerEntry.amount).where(LedgerEntry.order_id == order_id)
        )
        return order.refunded, order.reserved, sum(amounts, Decimal("0.00"))


@BOTH
def test_concurrent_refunds_never_pay_more_than_the_order(
    shop: Shop, activities: CaseActivities
) -> None:
    shop.add_order("ORD-RACE", "1000.00")
    amounts = [Decimal("100.00")] * 14
    case_ids = open_cases(activities, "ORD-RACE", amounts)

    results = at_once([paying(activities, c, "ORD-RACE", Decimal("100.00")) for c in case_ids])

    refused = [r for r in results if isinstance(r, ApplicationError)]
    assert all(r.type == "NotRefundable" and r.non_retryable for r in refused)
    assert len(refused) == 4, results
    refunded, reserved, paid = money(shop, "ORD-RACE")
    assert paid == Decimal("1000.00")
    assert refunded == paid
    assert reserved == Decimal("0.00")


@BOTH
def test_staggered_small_refunds_keep_the_order_refunded_equal_to_the_ledger(
    shop: Shop, activities: CaseActivities
) -> None:
    shop.add_order("ORD-SMALL", "100.00")
    pick = random.Random(7)
    amounts = [Decimal(pick.randint(500, 1500)) / 100 for _ in range(12)]
    delays = [pick.uniform(0, 0.15) for _ in amounts]
    case_ids = open_cases(activities, "ORD-SMALL", amounts)

    def later(case_id: str, amount: Decimal, delay: float) -> Callable[[], object]:
        def call() -> object:
            time.sleep(delay)
            return activities.issue_refund(instruction(case_id, "ORD-SMALL", amount))

        return call

    results = at_once([later(c, a, d) for c, a, d in zip(case_ids, amounts, delays, strict=True)])

    assert all(
        not isinstance(r, Exception)
        or (isinstance(r, ApplicationError) and r.type == "NotRefundable")
        for r in results
    ), results
    refunded, reserved, paid = money(shop, "ORD-SMALL")
    assert paid <= Decimal("100.00")
    assert refunded == paid
    assert reserved == Decimal("0.00")
    paid_amounts = [
        a for a, r in zip(amounts, results, strict=True) if not isinstance(r, Exception)
    ]
    assert sum(paid_amounts, Decimal("0")) == paid
    # Every refused one was refused for lack of room, not by accident.
    for amount, result in zip(amounts, results, strict=True):
        if isinstance(result, Exception):
            assert amount > Decimal("100.00") - paid


# ---- the reservation, step by step -------------------------------------------------------------


@BOTH
def test_a_retry_finds_its_own_reservation_and_never_reserves_twice(
    shop: Shop, activities: CaseActivities
) -> None:
    shop.add_order("ORD-HOLD", "300.00")
    [case_id] = open_cases(activities, "ORD-HOLD", [Decimal("200.00")])
    ledger = RefundLedger(shop.db)
    key = f"{case_id}/refund"
    for _ in range(2):
        assert ledger.hold(key, case_id=case_id, order_id="ORD-HOLD", amount=Decimal("200.00")) is (
            Held.HELD
        )
    assert money(shop, "ORD-HOLD") == (Decimal("0.00"), Decimal("200.00"), Decimal("0.00"))
    receipt = activities.issue_refund(instruction(case_id, "ORD-HOLD", Decimal("200.00")))
    assert receipt.amount == Decimal("200.00")  # paid from its own hold, not a second one
    assert money(shop, "ORD-HOLD") == (Decimal("200.00"), Decimal("0.00"), Decimal("200.00"))
    assert reservations(shop) == [(key, Decimal("200.00"), "paid")]


@BOTH
def test_an_order_that_cannot_cover_the_amount_reserves_nothing(
    shop: Shop, activities: CaseActivities
) -> None:
    shop.add_order("ORD-FULL", "100.00")
    first, second = open_cases(activities, "ORD-FULL", [Decimal("80.00"), Decimal("30.00")])
    ledger = RefundLedger(shop.db)
    assert (
        ledger.hold(f"{first}/refund", case_id=first, order_id="ORD-FULL", amount=Decimal("80.00"))
        is Held.HELD
    )
    with pytest.raises(ApplicationError) as failure:
        activities.issue_refund(instruction(second, "ORD-FULL", Decimal("30.00")))
    assert failure.value.type == "NotRefundable" and failure.value.non_retryable
    assert "only 20.00 of order ORD-FULL is still refundable" in str(failure.value)
    assert money(shop, "ORD-FULL") == (Decimal("0.00"), Decimal("80.00"), Decimal("0.00"))
    assert reservations(shop) == [(f"{first}/refund", Decimal("80.00"), "held")]


@BOTH
def test_a_hold_can_shrink_and_a_released_hold_gives_the_amount_back_for_good(
    shop: Shop, activities: CaseActivities
) -> None:
    shop.add_order("ORD-BACK", "100.00")
    [case_id] = open_cases(activities, "ORD-BACK", [Decimal("80.00")])
    ledger = RefundLedger(shop.db)
    key = f"{case_id}/refund"
    assert ledger.hold(key, case_id=case_id, order_id="ORD-BACK", amount=Decimal("80.00")) is (
        Held.HELD
    )
    assert ledger.hold(key, case_id=case_id, order_id="ORD-BACK", amount=Decimal("50.00")) is (
        Held.HELD
    )
    assert money(shop, "ORD-BACK")[1] == Decimal("50.00")

    assert ledger.release(key) is True
    assert ledger.release(key) is False  # a repeat changes nothing
    assert money(shop, "ORD-BACK") == (Decimal("0.00"), Decimal("0.00"), Decimal("0.00"))
    assert reservations(shop) == [(key, Decimal("50.00"), "released")]
    with pytest.raises(ApplicationError) as failure:
        activities.issue_refund(instruction(case_id, "ORD-BACK", Decimal("50.00")))
    assert failure.value.type == "NotRefundable"
    assert money(shop, "ORD-BACK") == (Decimal("0.00"), Decimal("0.00"), Decimal("0.00"))


@BOTH
def test_a_declined_payment_releases_its_reservation(
    shop: Shop, activities: CaseActivities
) -> None:
    shop.add_order("ORD-CLOSED", "100.00", payment_account="closed")
    [case_id] = open_cases(activities, "ORD-CLOSED", [Decimal("60.00")])
    with pytest.raises(ApplicationError) as failure:
        activities.issue_refund(instruction(case_id, "ORD-CLOSED", Decimal("60.00")))
    assert failure.value.type == "PaymentDeclined"
    assert money(shop, "ORD-CLOSED") == (Decimal("0.00"), Decimal("0.00"), Decimal("0.00"))
    assert reservations(shop) == [(f"{case_id}/refund", Decimal("60.00"), "released")]


def reservations(shop: Shop) -> list[tuple[str, Decimal, str]]:
    with shop.db.transaction() as session:
        rows = session.scalars(select(RefundReservation).order_by(RefundReservation.created_at))
        return [(r.idempotency_key, r.amount, r.status) for r in rows]


@BOTH
def test_a_hold_for_an_unknown_case_fails_and_leaves_the_order_untouched(shop: Shop) -> None:
    shop.add_order("ORD-NOCASE", "100.00")
    with pytest.raises(IntegrityError):
        RefundLedger(shop.db).hold(
            "no-such-case/refund",
            case_id="no-such-case",
            order_id="ORD-NOCASE",
            amount=Decimal("10.00"),
        )
    assert money(shop, "ORD-NOCASE") == (Decimal("0.00"), Decimal("0.00"), Decimal("0.00"))


@BOTH
def test_attempts_of_one_payment_at_once_hold_its_amount_once(
    shop: Shop, activities: CaseActivities
) -> None:
    shop.add_order("ORD-SAMEKEY", "100.00")
    [case_id] = open_cases(activities, "ORD-SAMEKEY", [Decimal("70.00")])
    ledger = RefundLedger(shop.db)

    def attempt() -> object:
        return ledger.hold(
            f"{case_id}/refund", case_id=case_id, order_id="ORD-SAMEKEY", amount=Decimal("70.00")
        )

    assert at_once([attempt] * 6) == [Held.HELD] * 6
    assert money(shop, "ORD-SAMEKEY")[1] == Decimal("70.00")
    assert reservations(shop) == [(f"{case_id}/refund", Decimal("70.00"), "held")]
