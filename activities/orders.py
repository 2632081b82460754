"""The order system: where orders, their lines, stock and what was refunded live.

``LocalOrderSystem`` is the default, real code over this product's database. A company with
its own order system implements ``OrderSystem`` and names it in ORDER_SYSTEM.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Result, Select, bindparam, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from infra.db import (
    Customer,
    Database,
    Order,
    OrderChangeRecord,
    OrderLine,
    OrderNote,
    Stock,
)
from workflows.order_change_models import ChangeKind, OrderChange

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
    # A commercial account (its price adjustments need a manager); False where unknown.
    commercial: bool = False


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

    def catalog_prices(self, skus: Sequence[str]) -> dict[str, Decimal | None]:
        """The catalog price of one unit of every sku asked for; None where it has none."""
        ...

    def apply_change(self, case_id: str, order_id: str, change: OrderChange, at: datetime) -> bool:
        """Apply ``change`` by case ``case_id`` with its reason in the order's notes, in one
        transaction, only while the order is ``processing`` and its line as quoted. False
        when that case applied it already (a retry: nothing changes); ``ChangeRefused`` when
        the order shipped (or its line changed) meanwhile: nothing changes either."""
        ...


class ChangeRefused(Exception):
    """The order cannot take the change any more: shipped, cancelled, or changed since."""


class LocalOrderSystem:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get_order(self, order_id: str) -> OrderInfo | None:
        with self._db.read() as session:
            rows = session.execute(_order_with_lines(), {"wanted": order_id}).all()
        if not rows:
            return None
        order = rows[0]
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
                    sku=row.sku,
                    description=row.description,
                    quantity=row.quantity,
                    unit_price=row.unit_price,
                )
                for row in rows
                if row.sku is not None  # an order without lines: one row, no line
            ),
        )

    def get_customer(self, customer_id: str) -> CustomerInfo | None:
        with self._db.read() as session:
            customer = session.execute(_customer(), {"wanted": customer_id}).first()
        if customer is None:
            return None
        return CustomerInfo(
            id=customer.id,
            name=customer.name,
            email=customer.email,
            vip=customer.vip,
            commercial=customer.commercial,
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

    def catalog_prices(self, skus: Sequence[str]) -> dict[str, Decimal | None]:
        wanted = list(dict.fromkeys(skus))
        with self._db.read() as session:
            rows = session.execute(
                select(Stock.sku, Stock.unit_price).where(Stock.sku.in_(wanted))
            ).all()
        known = {sku: price for sku, price in rows}
        return {sku: known.get(sku) for sku in wanted}

    def apply_change(self, case_id: str, order_id: str, change: OrderChange, at: datetime) -> bool:
        try:
            with self._db.transaction() as session:
                session.add(
                    OrderChangeRecord(
                        case_id=case_id,
                        order_id=order_id,
                        kind=change.kind.value,
                        # The address lives on the order row only.
                        detail=change.model_dump(mode="json", exclude={"address"}),
                        difference=change.difference,
                        applied_at=at,
                    )
                )
                session.flush()  # a retry (or a concurrent attempt) fails here: applied once
                # The arbiter of the race with the warehouse: still processing, checked and
                # locked in one UPDATE. An order shipped meanwhile matches no row; a shipment
                # arriving after this waits for the commit and ships the changed order.
                still = session.execute(
                    update(Order)
                    .where(Order.id == order_id, Order.status == "processing")
                    .values(
                        shipping_address=change.address
                        if change.kind is ChangeKind.ADDRESS
                        else Order.shipping_address
                    )
                )
                if _rowcount(still) != 1:
                    status = session.scalar(select(Order.status).where(Order.id == order_id))
                    raise ChangeRefused(
                        f"order {order_id} does not exist"
                        if status is None
                        else f"order {order_id} is {status} and can no longer be changed"
                    )
                _change_lines(session, order_id, change)
                session.add(
                    OrderNote(
                        order_id=order_id,
                        case_id=case_id,
                        kind="change_reason",
                        text=f"{change.described()}: {change.reason}",
                        at=at,
                    )
                )
        except IntegrityError:
            with self._db.read() as session:
                if session.get(OrderChangeRecord, case_id) is None:
                    raise  # not this case's change applied before: a real fault
            return False
        return True

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


def _change_lines(session: Session, order_id: str, change: OrderChange) -> None:
    """Change the quoted line, only as it was quoted (else ``ChangeRefused``)."""
    if change.kind is ChangeKind.ADDRESS:
        return
    quoted = (
        OrderLine.order_id == order_id,
        OrderLine.sku == change.sku,
        OrderLine.quantity == change.from_quantity,
    )
    if change.kind is ChangeKind.QUANTITY and change.quantity == 0:
        changed = session.execute(delete(OrderLine).where(*quoted))
    elif change.kind is ChangeKind.QUANTITY:
        changed = session.execute(update(OrderLine).where(*quoted).values(quantity=change.quantity))
    else:
        taken = session.scalar(
            select(OrderLine.id).where(
                OrderLine.order_id == order_id, OrderLine.sku == change.new_sku
            )
        )
        if taken is not None:
            raise ChangeRefused(f"order {order_id} already has a line of {change.new_sku}")
        changed = session.execute(
            update(OrderLine)
            .where(*quoted)
            .values(
                sku=change.new_sku, description=change.new_sku, unit_price=change.new_unit_price
            )
        )
    if _rowcount(changed) != 1:
        raise ChangeRefused(f"order {order_id}'s line {change.sku} changed since the quote")


def _rowcount(result: Result[Any]) -> int:
    return int(getattr(result, "rowcount", 0))


@cache
def _order_with_lines() -> Select[*tuple[Any, ...]]:
    """An order and its lines in one statement (a row per line, sku order), built once:
    building a statement costs more than running it."""
    return (
        select(
            Order.id,
            Order.customer_id,
            Order.status,
            Order.total,
            Order.refunded,
            Order.reserved,
            Order.placed_at,
            Order.delivered_at,
            OrderLine.sku,
            OrderLine.description,
            OrderLine.quantity,
            OrderLine.unit_price,
        )
        .outerjoin(OrderLine, OrderLine.order_id == Order.id)
        .where(Order.id == bindparam("wanted"))
        .order_by(OrderLine.sku)
    )


@cache
def _customer() -> Select[str, str, str, bool, bool]:
    return select(
        Customer.id, Customer.name, Customer.email, Customer.vip, Customer.commercial
    ).where(Customer.id == bindparam("wanted"))
