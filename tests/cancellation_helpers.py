"""Helpers the cancellation specifications share (tests/test_cancellation*.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from temporalio.client import Client, WorkflowHandle

from activities.cancellation import linked_return_id
from infra.db import LedgerEntry, Order, OrderNote
from registry import RETURN_DECLINED, RETURN_REQUESTED
from starter import deliver, start_case
from tests.case_helpers import state_of
from tests.conftest import Cases, Shop
from workflows.cancellation_models import CancellationRequest, CancellationState, ReturnAnswer
from workflows.models import CaseStatus

# Two lines: 2 x 60.00 + 4 x 20.00 = 200.00, under the manager's threshold.
LINES = (("BISON-RIBEYE", 2, "60.00"), ("ELK-SAUSAGE", 4, "20.00"))
# Over REFUND_APPROVAL_ABOVE (500.00): a manager decides first.
BIG_LINES = (("WAGYU-STRIP", 3, "250.00"),)


def an_order(shop: Shop, *, status: str = "processing", big: bool = False) -> str:
    """An order of the customer C-100 (200.00, or 750.00 when ``big``); its id."""
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    lines = BIG_LINES if big else LINES
    total = sum(int(quantity) * float(price) for _, quantity, price in lines)
    shop.add_order(order_id, f"{total:.2f}", status=status, lines=lines)
    return order_id


def cancellation(order_id: str, **fields: Any) -> CancellationRequest:
    return CancellationRequest.model_validate(
        {
            "request_id": f"req-{uuid.uuid4().hex[:10]}",
            "order_id": order_id,
            "customer_id": "C-100",
            "reason": "found_cheaper",
            "reason_text": "half price at the shop next door",
            "requested_by": "agent-amy",
            **fields,
        }
    )


async def start(cases: Cases, request: CancellationRequest) -> WorkflowHandle[Any, Any]:
    handle = await cases.start(start_case, request)
    # The return a cancellation may open outlives it: terminated with the test's cases.
    cases.handles.append(cases.client.get_workflow_handle(linked_return_id(handle.id)))
    return handle


async def cancellation_state(
    client: Client, case_id: str, ready: Callable[[CancellationState], bool]
) -> CancellationState:
    return await state_of(client, case_id, CancellationState, ready)


async def status_of(client: Client, case_id: str, status: CaseStatus) -> CancellationState:
    return await cancellation_state(client, case_id, lambda s: s.status is status)


async def request_return(client: Client, case_id: str) -> CancellationState:
    """The customer takes the return offered, relayed by the backend (the update)."""
    state: CancellationState = await deliver(
        client, case_id, RETURN_REQUESTED, ReturnAnswer(event_id="ret-1", answered_by="backend")
    )
    return state


async def decline_return(client: Client, case_id: str) -> CancellationState:
    state: CancellationState = await deliver(
        client, case_id, RETURN_DECLINED, ReturnAnswer(event_id="ret-no", answered_by="agent-amy")
    )
    return state


def ship(shop: Shop, order_id: str, status: str = "shipped") -> None:
    """The warehouse ships the order (or it is cancelled another way)."""
    with shop.db.transaction() as session:
        session.execute(update(Order).where(Order.id == order_id).values(status=status))


def deliver_order(shop: Shop, order_id: str, at: datetime) -> None:
    """The carrier delivered the order at ``at`` (the test server's clock runs ahead)."""
    with shop.db.transaction() as session:
        session.execute(
            update(Order).where(Order.id == order_id).values(status="delivered", delivered_at=at)
        )


def order(shop: Shop, order_id: str) -> Order:
    with shop.db.transaction() as session:
        found = session.get(Order, order_id)
        assert found is not None
        session.expunge(found)
        return found


def refunds(shop: Shop, case_id: str) -> list[LedgerEntry]:
    with shop.db.transaction() as session:
        return list(session.scalars(select(LedgerEntry).where(LedgerEntry.case_id == case_id)))


def notes(shop: Shop, case_id: str, kind: str = "cancellation_reason") -> list[str]:
    with shop.db.transaction() as session:
        query = select(OrderNote.text).where(OrderNote.case_id == case_id, OrderNote.kind == kind)
        return list(session.scalars(query))
