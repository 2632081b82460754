"""Helpers the My work specifications share (tests/test_work_*.py): cases waiting for each
role, as the database (which the work list reads) shows them, and the pages' server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from activities.staff import StaffDirectory
from infra.db import Approval, Case, Order, ReturnAuthorization, Staff
from starter import start_case, start_return
from tests.complaint_helpers import complaint
from tests.conftest import Cases, Shop
from tests.rush_helpers import rush, stocked_order
from workflows.models import CaseStatus, RefundRequest
from workflows.return_models import ReturnRequest

RETURN_LINES = (("BISON-RIBEYE", 2, "150.00"), ("ELK-JERKY", 3, "100.00"))


async def recorded_status(shop: Shop, case_id: str, status: CaseStatus) -> None:
    """Wait until the case's row (what the work list reads) has ``status``."""
    for _ in range(400):
        with shop.db.transaction() as session:
            found = session.scalar(select(Case.status).where(Case.id == case_id))
        if found == status.value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{case_id} never recorded {status} (last: {found})")


async def refund_waiting(
    cases: Cases,
    shop: Shop,
    amount: str,
    *,
    order_id: str = "ORD-1001",
    customer_id: str = "C-100",
    requested_by: str = "agent-amy",
) -> str:
    """A refund waiting for a manager's decision."""
    handle = await cases.refund(
        RefundRequest(
            request_id=f"req-{uuid.uuid4().hex[:10]}",
            order_id=order_id,
            customer_id=customer_id,
            amount=Decimal(amount),
            reason="thawed on arrival",
            requested_by=requested_by,
        )
    )
    await recorded_status(shop, handle.id, CaseStatus.AWAITING_APPROVAL)
    return handle.id


async def return_waiting(cases: Cases, shop: Shop, now: datetime) -> tuple[str, str]:
    """A return waiting for its package: the case id and its RA number. ``now`` is the test
    server's time (the order was delivered five days before it)."""
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    shop.add_order(order_id, "600.00", lines=RETURN_LINES)
    with shop.db.transaction() as session:
        order = session.get(Order, order_id)
        assert order is not None
        order.placed_at = now - timedelta(days=9)
        order.delivered_at = now - timedelta(days=5)
    request = ReturnRequest.model_validate(
        {
            "request_id": f"req-{uuid.uuid4().hex[:10]}",
            "order_id": order_id,
            "customer_id": "C-100",
            "items": [{"sku": "BISON-RIBEYE", "quantity": 2}],
            "reason": "wrong cut",
            "requested_by": "agent-amy",
        }
    )
    handle = await cases.start(start_return, request)
    await recorded_status(shop, handle.id, CaseStatus.AWAITING_RETURN)
    with shop.db.transaction() as session:
        ra = session.scalar(
            select(ReturnAuthorization.ra_number).where(ReturnAuthorization.case_id == handle.id)
        )
    assert ra is not None
    return handle.id, ra


async def complaint_waiting_for_qa(cases: Cases, shop: Shop) -> str:
    """A quality complaint escalated to QA, no findings yet."""
    handle = await cases.start(start_case, complaint())
    await recorded_status(shop, handle.id, CaseStatus.ESCALATED)
    return handle.id


async def rush_waiting_for_customer(cases: Cases, shop: Shop) -> str:
    """A rush order whose fee quote waits for the customer's answer (relayed by an agent)."""
    handle = await cases.start(start_case, rush(stocked_order(shop)))
    await recorded_status(shop, handle.id, CaseStatus.AWAITING_CUSTOMER)
    return handle.id


def add_staff(shop: Shop, staff_id: str, role: str, limit: str = "0") -> None:
    shop.tokens[staff_id] = StaffDirectory(shop.db).add(
        staff_id=staff_id,
        name=staff_id,
        email=f"{staff_id}@exoticmeats.com",
        role=role,
        approval_limit=Decimal(limit),
    )


async def delegate(env: WorkflowEnvironment, shop: Shop, staff_id: str, delegate_id: str) -> None:
    """``delegate_id`` stands in for ``staff_id`` from yesterday for a month, on both clocks:
    the gate reads delegations at the case's time (the time-skipping server's, which runs
    ahead of the wall clock as earlier specifications skip time) and the API at the wall's."""
    server_now, wall_now = await env.get_current_time(), datetime.now(UTC)
    StaffDirectory(shop.db).delegate(
        staff_id,
        delegate_id,
        min(server_now, wall_now) - timedelta(days=1),
        max(server_now, wall_now) + timedelta(days=30),
    )


def set_approval_limit(shop: Shop, staff_id: str, limit: str) -> None:
    """The directory changes ``staff_id``'s approval limit (as an administrator would)."""
    with shop.db.transaction() as session:
        member = session.get(Staff, staff_id)
        assert member is not None
        member.approval_limit = Decimal(limit)


def seed_case(
    shop: Shop,
    case_id: str,
    *,
    case_type: str = "refund",
    status: str = "awaiting_approval",
    order_id: str = "ORD-1001",
    customer_id: str = "C-100",
    amount: str | None = "750.00",
    eligible: tuple[str, ...] = (),
    ra_number: str | None = None,
    age: timedelta = timedelta(hours=1),
) -> None:
    """A case row as the workflows write it (with its approval row when ``eligible`` is set,
    its RA when ``ra_number`` is), without running a workflow: for listing many."""
    now = datetime.now(UTC)
    opened = now - age
    with shop.db.transaction() as session:
        session.add(
            Case(
                id=case_id,
                type=case_type,
                status=status,
                step="waiting",
                order_id=order_id,
                customer_id=customer_id,
                amount=None if amount is None else Decimal(amount),
                requested_by="agent-amy",
                request={},
                rules={},
                opened_at=opened,
                updated_at=opened,
            )
        )
        session.flush()
        if eligible:
            session.add(
                Approval(
                    case_id=case_id,
                    status="pending",
                    amount=Decimal(amount or "0"),
                    reason="thawed on arrival",
                    requested_by="agent-amy",
                    requested_at=opened,
                    remind_at=opened + timedelta(hours=4),
                    escalate_at=opened + timedelta(hours=8),
                    due_at=opened + timedelta(days=3),
                    eligible_approvers=list(eligible),
                )
            )
        if ra_number:
            session.add(
                ReturnAuthorization(
                    ra_number=ra_number,
                    case_id=case_id,
                    order_id=order_id,
                    customer_id=customer_id,
                    items=[],
                    issued_at=opened,
                    expires_at=opened + timedelta(days=30),
                )
            )
