"""Helpers the return specifications share (tests/test_returns*.py, test_ra_numbers.py,
test_return_reservations.py and the others that need a delivered order): an order to return,
the return request, and the case's steps up to the inspection; the ones every case
specification uses come from ``tests.case_helpers``."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from infra.db import Order, ReturnAuthorization
from starter import receive_package, start_return
from tests.case_helpers import wait_for_status
from tests.conftest import Cases, Shop
from workflows.models import CaseStatus
from workflows.return_models import InspectionResult, PackageReceived, ReturnRequest, ReturnState

# 2 ribeyes at 150.00 and 3 jerky packs at 100.00: 600.00 in all.
LINES = (("BISON-RIBEYE", 2, "150.00"), ("ELK-JERKY", 3, "100.00"))
RIBEYES = (("BISON-RIBEYE", 2),)  # 300.00: no manager needed
EVERYTHING = (("BISON-RIBEYE", 2), ("ELK-JERKY", 3))  # 600.00: over the threshold


async def delivered_order(
    env: WorkflowEnvironment,
    shop: Shop,
    *,
    days_ago: int = 5,
    status: str = "delivered",
) -> str:
    """An order delivered ``days_ago`` in the test server's time, which runs ahead of ours."""
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    shop.add_order(order_id, "600.00", lines=LINES, status=status)
    now = await env.get_current_time()
    with shop.db.transaction() as session:
        order = session.get(Order, order_id)
        assert order is not None
        order.placed_at = now - timedelta(days=days_ago + 4)
        order.delivered_at = now - timedelta(days=days_ago) if status == "delivered" else None
    return order_id


def return_of(order_id: str, items: tuple[tuple[str, int], ...] = RIBEYES) -> ReturnRequest:
    return ReturnRequest.model_validate(
        {
            "request_id": f"req-{uuid.uuid4().hex[:10]}",
            "order_id": order_id,
            "customer_id": "C-100",
            "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items],
            "reason": "wrong cut",
            "requested_by": "agent-amy",
        }
    )


async def start(cases: Cases, request: ReturnRequest) -> WorkflowHandle[Any, Any]:
    return await cases.start(start_return, request)


async def awaiting_return(client: Client, handle: WorkflowHandle[Any, Any]) -> str:
    """The RA number, once the case waits for the package."""
    state = await wait_for_status(client, handle.id, CaseStatus.AWAITING_RETURN)
    assert isinstance(state, ReturnState) and state.ra_number is not None
    return state.ra_number


def ra_rows(shop: Shop) -> list[ReturnAuthorization]:
    with shop.db.transaction() as session:
        return list(session.scalars(select(ReturnAuthorization).order_by(ReturnAuthorization.id)))


def package(ra_number: str) -> PackageReceived:
    return PackageReceived(event_id=f"evt-{uuid.uuid4().hex[:8]}", ra_number=ra_number)


def inspection(passed: bool, **fields: Any) -> InspectionResult:
    return InspectionResult(event_id=f"evt-{uuid.uuid4().hex[:8]}", passed=passed, **fields)


async def received(client: Client, handle: WorkflowHandle[Any, Any], ra_number: str) -> None:
    await receive_package(client, handle.id, package(ra_number))
    await wait_for_status(client, handle.id, CaseStatus.INSPECTING)
