"""Helpers the rush order specifications share (tests/test_rush_*.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import select
from temporalio.client import Client

from infra.db import CarrierRequestRecord, LedgerEntry, Order, OrderCharge
from registry import FEE_ACCEPTED, FEE_DECLINED
from starter import deliver
from tests.case_helpers import state_of
from tests.conftest import Shop
from workflows.models import CaseStatus
from workflows.rush_models import FeeAnswer, RushOrderRequest, RushState

# Two lines, six units: the fee is 25.00 + 6 x 5.00 under the default rules.
LINES = (("BISON-RIBEYE", 2, "60.00"), ("ELK-SAUSAGE", 4, "20.00"))
FEE = "55.00"


def stocked_order(
    shop: Shop, *, customer_id: str = "C-100", payment_account: str = "active", **kwargs: Any
) -> str:
    """A processing order of LINES, every sku in stock; its id."""
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    shop.add_order(
        order_id,
        "200.00",
        customer_id=customer_id,
        status=kwargs.pop("status", "processing"),
        payment_account=payment_account,
        lines=LINES,
    )
    for sku, _, _ in LINES:
        shop.set_stock(sku, 50)
    return order_id


def rush(order_id: str, customer_id: str = "C-100", **fields: Any) -> RushOrderRequest:
    return RushOrderRequest.model_validate(
        {
            "request_id": f"req-{uuid.uuid4().hex[:10]}",
            "order_id": order_id,
            "customer_id": customer_id,
            "requested_by": "agent-amy",
            **fields,
        }
    )


async def accept(client: Client, case_id: str, event_id: str = "accept-1") -> RushState:
    """The customer's acceptance, relayed by the backend (the update: refusals raise)."""
    state: RushState = await deliver(
        client, case_id, FEE_ACCEPTED, FeeAnswer(event_id=event_id, answered_by="backend")
    )
    return state


async def decline(client: Client, case_id: str) -> RushState:
    state: RushState = await deliver(
        client, case_id, FEE_DECLINED, FeeAnswer(event_id="decline-1", answered_by="agent-amy")
    )
    return state


async def rush_state(client: Client, case_id: str, ready: Callable[[RushState], bool]) -> RushState:
    return await state_of(client, case_id, RushState, ready)


async def status_of(client: Client, case_id: str, status: CaseStatus) -> RushState:
    return await rush_state(client, case_id, lambda s: s.status is status)


def charges(shop: Shop, case_id: str) -> list[OrderCharge]:
    with shop.db.transaction() as session:
        return list(session.scalars(select(OrderCharge).where(OrderCharge.case_id == case_id)))


def refunds(shop: Shop, case_id: str) -> list[LedgerEntry]:
    with shop.db.transaction() as session:
        return list(session.scalars(select(LedgerEntry).where(LedgerEntry.case_id == case_id)))


def carrier_requests(shop: Shop, case_id: str) -> list[CarrierRequestRecord]:
    with shop.db.transaction() as session:
        query = select(CarrierRequestRecord).where(CarrierRequestRecord.case_id == case_id)
        return list(session.scalars(query.order_by(CarrierRequestRecord.created_at)))


def order(shop: Shop, order_id: str) -> Order:
    with shop.db.transaction() as session:
        found = session.get(Order, order_id)
        assert found is not None
        session.expunge(found)
        return found


def weekday_name(day: date) -> str:
    return f"{day:%A %B} {day.day}"
