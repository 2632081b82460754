"""The order system: where orders, their lines and what was refunded live.

``LocalOrderSystem`` is the default, real code over this product's database. A company with
its own order system implements ``OrderSystem`` and names it in ORDER_SYSTEM.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from infra.db import Customer, Database, Order, OrderLine


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


class OrderSystem(Protocol):
    def get_order(self, order_id: str) -> OrderInfo | None: ...

    def get_customer(self, customer_id: str) -> CustomerInfo | None: ...

    def place_replacement(
        self, replacement_id: str, *, order_id: str, sku: str, at: datetime
    ) -> bool:
        """Place order ``replacement_id``: one ``sku`` of ``order_id``, free of charge.
        False when it exists already (a retry): never two replacements for one id."""
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
