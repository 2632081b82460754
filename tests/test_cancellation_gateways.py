"""The order system's cancellation, as the local default implements it: the arbiter between
a cancellation and the warehouse (and between two cancellations). One conditional UPDATE per
call, idempotent per case; specified on SQLite and on PostgreSQL, a real race included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from activities.cases import CaseActivities
from activities.orders import LocalOrderSystem
from infra.db import AuditRecord, Order, OrderNote
from tests.conftest import Shop
from tests.races import at_once
from workflows.cancellation_models import CancellationCheck, OrderCancellation
from workflows.models import AuditEntry, CaseOpening, CaseType

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def processing(shop: Shop, order_id: str = "ORD-7001", total: str = "200.00") -> str:
    shop.add_order(order_id, total, status="processing", lines=(("BISON-RIBEYE", 2, "100.00"),))
    return order_id


def status(shop: Shop, order_id: str) -> str:
    with shop.db.transaction() as session:
        order = session.get(Order, order_id)
        assert order is not None
        return order.status


def notes(shop: Shop, order_id: str) -> list[tuple[str, str, str]]:
    with shop.db.transaction() as session:
        rows = session.scalars(select(OrderNote).where(OrderNote.order_id == order_id))
        return sorted((row.case_id, row.kind, row.text) for row in rows)


def test_a_processing_order_is_cancelled_once_and_a_retry_of_the_same_case_is_told_so(
    shop: Shop,
) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing(shop)

    first = orders.cancel_order(order_id, case_id="cancellation-a", at=NOW)
    retry = orders.cancel_order(order_id, case_id="cancellation-a", at=NOW)

    assert (first, retry) == ("cancelled", "cancelled")
    assert status(shop, order_id) == "cancelled"
    assert notes(shop, order_id) == [("cancellation-a", "cancelled_by", "")]


def test_an_order_cancelled_by_another_case_is_already_cancelled(shop: Shop) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing(shop)
    orders.cancel_order(order_id, case_id="cancellation-a", at=NOW)

    assert orders.cancel_order(order_id, case_id="cancellation-b", at=NOW) == "already_cancelled"


@pytest.mark.parametrize("left", ["shipped", "delivered"])
def test_an_order_that_left_the_warehouse_is_not_cancelled_and_says_why(
    shop: Shop, left: str
) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing(shop)
    with shop.db.transaction() as session:
        session.execute(update(Order).where(Order.id == order_id).values(status=left))

    assert orders.cancel_order(order_id, case_id="cancellation-a", at=NOW) == left
    assert status(shop, order_id) == left
    assert notes(shop, order_id) == []


def test_cancelling_an_unknown_order_is_refused(shop: Shop) -> None:
    with pytest.raises(LookupError):
        LocalOrderSystem(shop.db).cancel_order("ORD-NOPE", case_id="cancellation-a", at=NOW)


def test_two_cancellations_at_once_one_cancels_the_other_is_told_it_was_already(
    shop: Shop,
) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing(shop)

    results = at_once(
        [
            lambda: orders.cancel_order(order_id, case_id="cancellation-a", at=NOW),
            lambda: orders.cancel_order(order_id, case_id="cancellation-b", at=NOW),
        ]
    )

    assert sorted(map(str, results)) == ["already_cancelled", "cancelled"]
    winner = "cancellation-a" if results[0] == "cancelled" else "cancellation-b"
    assert notes(shop, order_id) == [(winner, "cancelled_by", "")]
    assert status(shop, order_id) == "cancelled"


def test_a_cancellation_racing_the_warehouse_either_cancels_or_finds_it_shipped(
    shop: Shop,
) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing(shop)

    def ship() -> int:
        with shop.db.transaction() as session:
            shipped = session.execute(
                update(Order)
                .where(Order.id == order_id, Order.status == "processing")
                .values(status="shipped")
            )
            return int(getattr(shipped, "rowcount", 0))

    cancelled, shipped = at_once(
        [lambda: orders.cancel_order(order_id, case_id="cancellation-a", at=NOW), ship]
    )

    # Exactly one of the two moved the order out of processing, and the other knows it.
    assert (cancelled, shipped) in {("cancelled", 0), ("shipped", 1)}
    assert status(shop, order_id) == ("cancelled" if shipped == 0 else "shipped")


def test_the_cancel_activity_notes_the_reason_once_with_the_case_audit_lines(
    shop: Shop, activities: CaseActivities
) -> None:
    order_id = processing(shop)
    case_id = "cancellation-req-1"
    activities.open_case(
        CaseOpening(
            case_id=case_id,
            case_type=CaseType.CANCELLATION,
            order_id=order_id,
            customer_id="C-100",
            amount=None,
            requested_by="agent-amy",
            request={"request_id": "req-1"},
            opened_at=NOW,
        )
    )
    line = AuditEntry(
        case_id=case_id, seq=1, at=NOW, event="cancellation_requested", actor="agent-amy"
    )
    cancel = OrderCancellation(
        case_id=case_id,
        order_id=order_id,
        reason="found_cheaper",
        reason_text="half price next door",
        at=NOW,
        audit=(line,),
    )

    first = activities.cancel_order(cancel)
    again = activities.cancel_order(cancel)

    assert (first.outcome, again.outcome) == ("cancelled", "cancelled")
    assert (case_id, "cancellation_reason", "found_cheaper: half price next door") in notes(
        shop, order_id
    )
    assert len(notes(shop, order_id)) == 2  # the reason, and who cancelled it
    with shop.db.transaction() as session:
        written = session.scalars(select(AuditRecord.event).where(AuditRecord.case_id == case_id))
        assert list(written).count("cancellation_requested") == 1


def test_the_assessment_reads_what_the_order_still_holds(
    shop: Shop, activities: CaseActivities
) -> None:
    order_id = processing(shop, total="750.00")
    with shop.db.transaction() as session:
        session.execute(update(Order).where(Order.id == order_id).values(refunded=100, reserved=50))

    standing = activities.assess_cancellation(
        CancellationCheck(case_id="c", order_id=order_id, customer_id="C-100")
    )
    theirs = activities.assess_cancellation(
        CancellationCheck(case_id="c", order_id=order_id, customer_id="C-200")
    )

    assert standing.refundable == 600
    assert standing.status == "processing"
    assert [(line.sku, line.quantity) for line in standing.lines] == [("BISON-RIBEYE", 2)]
    assert "not this customer's" in theirs.refusal
