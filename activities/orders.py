"""The order system: where orders, their lines, stock and what was refunded live.

``LocalOrderSystem`` is the default, real code over this product's database. A company with
its own order system implements ``OrderSystem`` and names it in ORDER_SYSTEM.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Result, or_, select, update
from sqlalchemy.exc import IntegrityError

from infra.db import Customer, Database, Order, OrderLine, OrderNote, Stock

# The order note the local order system keeps of the case that cancelled an order.
CANCELLED_BY = "cancelled_by"


class OrderLineInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    sku: str
    description: str
    quantity: int
    unit_price: Decimal


class OrderInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    customer_id: str
    status: str
    total: Decimal
    refunded: Decimal
    # Held for payments in flight; an order system without reservations leaves it at zero.
    reserved: Decimal = Decimal("0")
    placed_at: datetime
    delivered_at: datetime | None
    lines: tuple[OrderLineInfo, ...] = ()

    @property
    def refundable(self) -> Decimal:
        return self.total - self.refunded - self.reserved


class CustomerInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    name: str
    email: str
    vip: bool


class StockInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    sku: str
    on_hand: int
    restock_on: date | None  # the next delivery the warehouse expects, when it knows one


class OrderSystem(Protocol):
    def get_order(self, order_id: str) -> OrderInfo | None: ...

    def get_customer(self, customer_id: str) -> CustomerInfo | None: ...

    def place_replacement(
        self, replacement_id: str, *, order_id: str, sku: str, at: datetime
    ) -> bool:
        """Place order ``replacement_id``: one ``sku`` of ``order_id``, free of charge.
        False when it exists already (a retry): never two replacements for one id."""
        ...

    def get_stock(self, skus: Sequence[str]) -> dict[str, StockInfo]:
        """Stock of every sku asked for; one the system has none of is ``on_hand=0``."""
        ...

    def flag_priority(
        self, order_id: str, *, case_id: str, promised_on: date, at: datetime
    ) -> bool:
        """Flag the order for priority processing by case ``case_id``, promised for
        ``promised_on``. False when that case flagged it already (a retry: nothing changes);
        ``LookupError`` for an unknown order."""
        ...

    def cancel_order(self, order_id: str, *, case_id: str, at: datetime) -> str:
        """Cancel the order for case ``case_id`` if it has not shipped: the arbiter between a
        cancellation and the warehouse. ``"cancelled"`` when this call (or an earlier one by
        the same case: a retry) cancelled it; ``"already_cancelled"`` when someone else did;
        else the status that stops it (``"shipped"``, ``"delivered"``). ``LookupError`` for an
        unknown order."""
        ...


class LocalOrderSystem:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get_order(self, order_id: str) -> OrderInfo | None:
        with self._db.read() as session:
            order = session.get(Order, order_id)
            if order is None:
                return None
            lines = session.scalars(
                select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.sku)
            ).all()
            return OrderInfo(
                id=order.id,
                customer_id=order.customer_id,
                status=order.status,
                total=order.total,
                refunded=order.refunded,
                reserved=order.reserved,
                placed_at=order.placed_at,
                delivered_at=order.delivered_at,
                lines=tuple(
                    OrderLineInfo(
                        sku=line.sku,
                        description=line.description,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                    )
                    for line in lines
                ),
            )

    def get_customer(self, customer_id: str) -> CustomerInfo | None:
        with self._db.read() as session:
            customer = session.get(Customer, customer_id)
            if customer is None:
                return None
            return CustomerInfo(
                id=customer.id, name=customer.name, email=customer.email, vip=customer.vip
            )

    def place_replacement(
        self, replacement_id: str, *, order_id: str, sku: str, at: datetime
    ) -> bool:
        with self._db.transaction() as session:
            if session.get(Order, replacement_id) is not None:
                return False
            original = session.get(Order, order_id)
            if original is None:
                raise LookupError(f"order {order_id} does not exist")
            customer_id = original.customer_id
            described = session.scalars(
                select(OrderLine.description).where(
                    OrderLine.order_id == order_id, OrderLine.sku == sku
                )
            ).first()
        try:
            with self._db.transaction() as session:
                # Its own transaction: a concurrent attempt with the same id meets the
                # primary key and reports the replacement as already placed.
                session.add(
                    Order(
                        id=replacement_id,
                        customer_id=customer_id,
                        status="processing",
                        total=Decimal("0"),
                        refunded=Decimal("0"),
                        placed_at=at,
                        delivered_at=None,
                    )
                )
                session.flush()
                session.add(
                    OrderLine(
                        order_id=replacement_id,
                        sku=sku,
                        description=described or sku,
                        quantity=1,
                        unit_price=Decimal("0"),
                    )
                )
        except IntegrityError:
            return False
        return True

    def get_stock(self, skus: Sequence[str]) -> dict[str, StockInfo]:
        wanted = list(dict.fromkeys(skus))  # once each, in the order asked
        with self._db.read() as session:
            rows = (
                session.scalars(select(Stock).where(Stock.sku.in_(wanted))).all() if wanted else []
            )
            known = {
                row.sku: StockInfo(sku=row.sku, on_hand=row.on_hand, restock_on=row.restock_on)
                for row in rows
            }
        # A sku never stocked is simply out of stock, with no restock in sight: the caller
        # reports it as unavailable rather than failing on a missing key.
        return {
            sku: known.get(sku, StockInfo(sku=sku, on_hand=0, restock_on=None)) for sku in wanted
        }

    def flag_priority(
        self, order_id: str, *, case_id: str, promised_on: date, at: datetime
    ) -> bool:
        with self._db.transaction() as session:
            # Check and set at once: of two attempts by the same case only one sees the flag
            # unset by that case, so a retry never moves ``priority_flagged_at``. A flag left
            # by another (earlier) case is replaced: the latest promise is the one to keep.
            flagged = session.execute(
                update(Order)
                .where(
                    Order.id == order_id,
                    or_(Order.priority_case_id.is_(None), Order.priority_case_id != case_id),
                )
                .values(priority_case_id=case_id, promised_on=promised_on, priority_flagged_at=at)
            )
            if _rowcount(flagged) == 1:
                return True
            if session.get(Order, order_id) is None:
                raise LookupError(f"order {order_id} does not exist")
            return False

    def cancel_order(self, order_id: str, *, case_id: str, at: datetime) -> str:
        with self._db.transaction() as session:
            # One conditional UPDATE: of a cancellation and the warehouse's shipping (or two
            # cancellations) racing on the order, exactly one moves it out of processing.
            cancelled = session.execute(
                update(Order)
                .where(Order.id == order_id, Order.status == "processing")
                .values(status="cancelled")
            )
            if _rowcount(cancelled) == 1:
                # Which case cancelled it, in the same transaction: a retry recognises its own.
                session.add(
                    OrderNote(order_id=order_id, case_id=case_id, kind=CANCELLED_BY, text="", at=at)
                )
                return "cancelled"
            order = session.get(Order, order_id)
            if order is None:
                raise LookupError(f"order {order_id} does not exist")
            if order.status != "cancelled":
                return order.status
            mine = session.scalar(
                select(OrderNote.id).where(
                    OrderNote.case_id == case_id, OrderNote.kind == CANCELLED_BY
                )
            )
            return "cancelled" if mine is not None else "already_cancelled"


def _rowcount(result: Result[Any]) -> int:
    return int(getattr(result, "rowcount", 0))
