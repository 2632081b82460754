"""The order system's side of an order change, as ``LocalOrderSystem`` implements it.

``apply_change`` is the arbiter of two races: a retry (or a concurrent attempt) of the same
case applies the change once, and the warehouse shipping the order at the same instant
either finds the change applied or refuses it whole. Specified on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update

from activities.orders import ChangeRefused, LocalOrderSystem
from infra.db import Base, Database, Order, OrderChangeRecord, OrderNote
from tests.conftest import Shop
from tests.order_change_helpers import (
    NEW_ADDRESS,
    add_commercial_customer,
    lines,
    order,
    processing_order,
)
from tests.races import at_once
from workflows.order_change_models import ChangeKind, OrderChange

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
UNCHANGED = {"BISON-RIBEYE": (2, Decimal("60.00")), "ELK-SAUSAGE": (4, Decimal("20.00"))}


def more_sausage(quantity: int = 6, **fields: Any) -> OrderChange:
    return OrderChange(
        kind=ChangeKind.QUANTITY,
        sku="ELK-SAUSAGE",
        from_quantity=4,
        quantity=quantity,
        reason="more guests",
        difference=Decimal("20.00") * (quantity - 4),
        **fields,
    )


def count(db: Database, table: type[Base]) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def ship_if_processing(db: Database, order_id: str) -> bool:
    """The warehouse's own conditional ship: only an order still being prepared leaves."""
    with db.transaction() as session:
        shipped = session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == "processing")
            .values(status="shipped")
        )
        return int(getattr(shipped, "rowcount", 0)) == 1


def test_a_change_is_applied_once_with_its_reason_noted(shop: Shop) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing_order(shop)

    assert orders.apply_change("oc-1", order_id, more_sausage(), NOW)
    assert not orders.apply_change("oc-1", order_id, more_sausage(), NOW)  # the retry

    assert lines(shop, order_id)["ELK-SAUSAGE"] == (6, Decimal("20.00"))
    assert count(shop.db, OrderChangeRecord) == 1
    with shop.db.read() as session:
        [note] = session.scalars(select(OrderNote)).all()
        assert (note.case_id, note.kind, note.text) == (
            "oc-1",
            "change_reason",
            "ELK-SAUSAGE: 4 becomes 6: more guests",
        )
    assert order(shop, order_id).total == Decimal("200.00")  # money moves by the ledgers only


def test_an_address_change_sets_the_shipping_address_and_keeps_it_off_the_record(
    shop: Shop,
) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing_order(shop)
    change = OrderChange(kind=ChangeKind.ADDRESS, address=NEW_ADDRESS, reason="moved")

    assert orders.apply_change("oc-1", order_id, change, NOW)

    assert order(shop, order_id).shipping_address == NEW_ADDRESS
    assert lines(shop, order_id) == UNCHANGED
    with shop.db.read() as session:
        record = session.get(OrderChangeRecord, "oc-1")
        assert record is not None and NEW_ADDRESS not in str(record.detail)


def test_an_item_swap_takes_the_quoted_catalog_price(shop: Shop) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing_order(shop)
    swap = OrderChange(
        kind=ChangeKind.ITEM,
        sku="ELK-SAUSAGE",
        from_quantity=4,
        quantity=4,
        new_sku="ELK-LOIN",
        new_unit_price=Decimal("35.00"),
        reason="prefers loin",
        difference=Decimal("60.00"),
    )

    assert orders.apply_change("oc-1", order_id, swap, NOW)

    assert lines(shop, order_id) == {
        "BISON-RIBEYE": (2, Decimal("60.00")),
        "ELK-LOIN": (4, Decimal("35.00")),
    }


def test_catalog_prices_and_the_commercial_flag_come_from_the_order_system(shop: Shop) -> None:
    orders = LocalOrderSystem(shop.db)
    processing_order(shop)
    customer = add_commercial_customer(shop)

    prices = orders.catalog_prices(["ELK-LOIN", "KANGAROO"])
    commercial, private = orders.get_customer(customer), orders.get_customer("C-100")

    assert prices == {"ELK-LOIN": Decimal("35.00"), "KANGAROO": None}
    assert commercial is not None and commercial.commercial
    assert private is not None and not private.commercial


@pytest.mark.parametrize("status", ["shipped", "cancelled"])
def test_an_order_no_longer_processing_refuses_the_change_and_nothing_is_written(
    shop: Shop, status: str
) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing_order(shop, status=status)

    with pytest.raises(ChangeRefused, match=status):
        orders.apply_change("oc-1", order_id, more_sausage(), NOW)

    assert lines(shop, order_id) == UNCHANGED
    assert count(shop.db, OrderChangeRecord) == 0 and count(shop.db, OrderNote) == 0


def test_a_line_changed_since_the_quote_refuses_the_change(shop: Shop) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing_order(shop)
    assert orders.apply_change("oc-1", order_id, more_sausage(6), NOW)

    with pytest.raises(ChangeRefused, match="changed since the quote"):
        orders.apply_change("oc-2", order_id, more_sausage(2), NOW)  # quoted on 4 units

    assert lines(shop, order_id)["ELK-SAUSAGE"] == (6, Decimal("20.00"))
    assert count(shop.db, OrderChangeRecord) == 1


def test_two_attempts_of_one_case_at_once_apply_it_once(shop: Shop) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing_order(shop)

    results = at_once([lambda: orders.apply_change("oc-1", order_id, more_sausage(), NOW)] * 2)

    assert sorted(results, key=str) == [False, True]
    assert lines(shop, order_id)["ELK-SAUSAGE"] == (6, Decimal("20.00"))
    assert count(shop.db, OrderChangeRecord) == 1 and count(shop.db, OrderNote) == 1


def test_two_cases_changing_one_line_at_once_apply_one_change_only(shop: Shop) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing_order(shop)

    results = at_once(
        [
            lambda: orders.apply_change("oc-1", order_id, more_sausage(6), NOW),
            lambda: orders.apply_change("oc-2", order_id, more_sausage(2), NOW),
        ]
    )

    assert sorted(type(r).__name__ for r in results) == ["ChangeRefused", "bool"]
    winner = 6 if results[0] is True else 2
    assert lines(shop, order_id)["ELK-SAUSAGE"] == (winner, Decimal("20.00"))
    assert count(shop.db, OrderChangeRecord) == 1


@pytest.mark.parametrize("attempt", range(3))
def test_a_change_racing_the_shipment_is_applied_before_it_or_not_at_all(
    shop: Shop, attempt: int
) -> None:
    orders = LocalOrderSystem(shop.db)
    order_id = processing_order(shop)

    applied, shipped = at_once(
        [
            lambda: orders.apply_change("oc-1", order_id, more_sausage(), NOW),
            lambda: ship_if_processing(shop.db, order_id),
        ]
    )

    assert shipped is True  # the warehouse is never held up for good
    assert order(shop, order_id).status == "shipped"
    if applied is True:  # the change committed first: the order shipped changed
        assert lines(shop, order_id)["ELK-SAUSAGE"] == (6, Decimal("20.00"))
        assert count(shop.db, OrderChangeRecord) == 1 and count(shop.db, OrderNote) == 1
    else:  # the shipment did: the change is refused whole
        assert isinstance(applied, ChangeRefused), applied
        assert lines(shop, order_id) == UNCHANGED
        assert count(shop.db, OrderChangeRecord) == 0 and count(shop.db, OrderNote) == 0
