"""Helpers the order change specifications share (tests/test_order_change*.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from temporalio.client import Client

from infra.db import (
    Approval,
    Case,
    Customer,
    LedgerEntry,
    Order,
    OrderChangeRecord,
    OrderCharge,
    OrderLine,
    OrderNote,
    Stock,
)
from registry import CHANGE_ACCEPTED, CHANGE_DECLINED
from starter import deliver
from tests.case_helpers import state_of
from tests.conftest import Shop
from workflows.models import CaseStatus
from workflows.order_change_models import ChangeAnswer, OrderChangeRequest, OrderChangeState

# Two lines, 2 x 60.00 + 4 x 20.00 = 200.00; ELK-LOIN is in the catalog at 35.00.
LINES = (("BISON-RIBEYE", 2, "60.00"), ("ELK-SAUSAGE", 4, "20.00"))
CATALOG = {"BISON-RIBEYE": "60.00", "ELK-SAUSAGE": "20.00", "ELK-LOIN": "35.00"}
TOTAL = Decimal("200.00")
COMMERCIAL = "C-300"  # a restaurant buying on a commercial account
NEW_ADDRESS = "Loading dock B, 77 Harbour Road, Portland ME 04101"


def processing_order(
    shop: Shop, *, customer_id: str = "C-100", status: str = "processing", **kwargs: Any
) -> str:
    """An order of LINES being prepared (or ``status``), every catalog sku in stock; its id."""
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    shop.add_order(
        order_id, str(TOTAL), customer_id=customer_id, status=status, lines=LINES, **kwargs
    )
    with shop.db.transaction() as session:
        for sku, price in CATALOG.items():
            session.merge(Stock(sku=sku, on_hand=50, restock_on=None, unit_price=Decimal(price)))
    return order_id


def add_commercial_customer(shop: Shop) -> str:
    with shop.db.transaction() as session:
        session.add(
            Customer(
                id=COMMERCIAL,
                name="Harbour Grill",
                email="orders@harbourgrill.example",
                phone=None,
                address="77 Harbour Road",
                vip=False,
                commercial=True,
            )
        )
    return COMMERCIAL


def change(
    order_id: str, kind: str, customer_id: str = "C-100", **fields: Any
) -> OrderChangeRequest:
    return OrderChangeRequest.model_validate(
        {
            "request_id": f"req-{uuid.uuid4().hex[:10]}",
            "order_id": order_id,
            "customer_id": customer_id,
            "kind": kind,
            "reason": "the customer's dinner party grew",
            "requested_by": "agent-amy",
            **fields,
        }
    )


async def accept(client: Client, case_id: str, event_id: str = "accept-1") -> OrderChangeState:
    """The customer's acceptance, relayed by the backend (the update: refusals raise)."""
    state: OrderChangeState = await deliver(
        client, case_id, CHANGE_ACCEPTED, ChangeAnswer(event_id=event_id, answered_by="backend")
    )
    return state


async def decline(client: Client, case_id: str) -> OrderChangeState:
    state: OrderChangeState = await deliver(
        client, case_id, CHANGE_DECLINED, ChangeAnswer(event_id="decline-1", answered_by="backend")
    )
    return state


async def change_state(
    client: Client, case_id: str, ready: Callable[[OrderChangeState], bool]
) -> OrderChangeState:
    return await state_of(client, case_id, OrderChangeState, ready)


async def status_of(client: Client, case_id: str, status: CaseStatus) -> OrderChangeState:
    return await change_state(client, case_id, lambda s: s.status is status)


def ship(shop: Shop, order_id: str) -> None:
    """The warehouse ships the order."""
    with shop.db.transaction() as session:
        found = session.get(Order, order_id)
        assert found is not None
        found.status = "shipped"


def order(shop: Shop, order_id: str) -> Order:
    with shop.db.transaction() as session:
        found = session.get(Order, order_id)
        assert found is not None
        session.expunge(found)
        return found


def lines(shop: Shop, order_id: str) -> dict[str, tuple[int, Decimal]]:
    """The order's lines: sku -> (quantity, unit price)."""
    with shop.db.read() as session:
        rows = session.scalars(select(OrderLine).where(OrderLine.order_id == order_id))
        return {row.sku: (row.quantity, row.unit_price) for row in rows}


def charges(shop: Shop, case_id: str) -> list[OrderCharge]:
    with shop.db.read() as session:
        return list(session.scalars(select(OrderCharge).where(OrderCharge.case_id == case_id)))


def refunds(shop: Shop, case_id: str) -> list[LedgerEntry]:
    with shop.db.read() as session:
        return list(session.scalars(select(LedgerEntry).where(LedgerEntry.case_id == case_id)))


def notes(shop: Shop, case_id: str) -> list[OrderNote]:
    with shop.db.read() as session:
        return list(session.scalars(select(OrderNote).where(OrderNote.case_id == case_id)))


def change_record(shop: Shop, case_id: str) -> OrderChangeRecord | None:
    with shop.db.read() as session:
        return session.get(OrderChangeRecord, case_id)


def approval(shop: Shop, case_id: str) -> Approval | None:
    with shop.db.read() as session:
        return session.get(Approval, case_id)


def stored_request(shop: Shop, case_id: str) -> dict[str, Any]:
    with shop.db.read() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return dict(case.request)
