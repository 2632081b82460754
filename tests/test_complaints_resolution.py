"""Complaints, step 3: the immediate resolution (a replacement, or money back).

The replacement is placed once however the step is retried; a refund goes through the
shared mechanism (``RefundLedger``: the order's refundable amount bounds it, also against a
refund case racing on the same order) and, strictly over COMPLAINT_SETTLEMENT_ABOVE, through
the approval gate.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowHandle

from activities.cases import CaseActivities
from activities.complaints import replacement_id
from infra.db import LedgerEntry, Order, OrderLine
from starter import decide, start_case
from tests.case_helpers import events, eventually
from tests.complaint_helpers import complaint, state_when, status_of
from tests.conftest import Cases, Shop
from workflows.complaint_models import ComplaintRequest
from workflows.models import (
    CaseStatus,
    Decision,
    DecisionKind,
    RefundRequest,
)

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


async def start(cases: Cases, request: Any) -> WorkflowHandle[Any, Any]:
    return await cases.start(start_case, request)


def an_order(shop: Shop, total: str) -> str:
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    shop.add_order(order_id, total, lines=(("BISON-RIBEYE", 2, "75.00"),))
    return order_id


def ledger(shop: Shop, order_id: str) -> list[LedgerEntry]:
    with shop.db.transaction() as session:
        return list(session.scalars(select(LedgerEntry).where(LedgerEntry.order_id == order_id)))


def order(shop: Shop, order_id: str) -> Order:
    with shop.db.transaction() as session:
        found = session.get(Order, order_id)
        assert found is not None
        return found


class FailsOnceAfterPlacing:
    """The order system placing the replacement, then the activity's first attempt failing
    (a crash before it could report): the retry must not place a second one."""

    def __init__(self, orders: Any) -> None:
        self._orders = orders
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._orders, name)

    def place_replacement(self, replacement: str, *, order_id: str, sku: str, at: datetime) -> bool:
        self.calls += 1
        created: bool = self._orders.place_replacement(
            replacement, order_id=order_id, sku=sku, at=at
        )
        if self.calls == 1:
            raise RuntimeError("connection lost after the insert")
        return created


async def test_replacement_is_placed_once_under_a_retried_activity(
    client: Client, cases: Cases, shop: Shop, activities: CaseActivities
) -> None:
    flaky = FailsOnceAfterPlacing(activities.orders)
    activities.orders = flaky
    handle = await start(cases, complaint("quality", "replacement"))

    state = await state_when(client, handle.id, lambda s: s.replacement_order_id is not None)
    await eventually(lambda: [e for e in events(shop, handle.id) if e == "replacement_placed"])

    assert flaky.calls == 2
    assert state.replacement_order_id == replacement_id(handle.id)
    with shop.db.transaction() as session:
        rows = list(session.scalars(select(Order).where(Order.id.like("RPL-%"))))
        assert [row.id for row in rows] == [replacement_id(handle.id)]
        assert rows[0].customer_id == "C-100" and rows[0].total == Decimal("0")
        lines = list(session.scalars(select(OrderLine).where(OrderLine.order_id == rows[0].id)))
        assert [(line.sku, line.quantity) for line in lines] == [("BISON-RIBEYE", 1)]
    assert events(shop, handle.id).count("replacement_placed") == 1


async def test_a_settlement_of_exactly_1000_needs_no_manager(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = an_order(shop, "1500.00")
    handle = await start(cases, complaint("quality", "refund", "1000.00", order_id=order_id))

    await eventually(lambda: ledger(shop, order_id))
    state = await state_when(client, handle.id, lambda s: "refund_issued" in _events(s))
    assert state.approval is None
    assert [entry.amount for entry in ledger(shop, order_id)] == [Decimal("1000.00")]


async def test_a_settlement_of_1000_01_waits_for_a_manager_then_is_paid(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = an_order(shop, "1500.00")
    handle = await start(cases, complaint("quality", "refund", "1000.01", order_id=order_id))

    state = await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    assert state.approval is not None and state.approval.amount == Decimal("1000.01")
    assert ledger(shop, order_id) == []
    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE))

    await eventually(lambda: ledger(shop, order_id))
    assert [entry.amount for entry in ledger(shop, order_id)] == [Decimal("1000.01")]


async def test_a_settlement_a_manager_rejects_ends_the_case_rejected(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = an_order(shop, "1500.00")
    handle = await start(cases, complaint("quality", "refund", "1200.00", order_id=order_id))
    await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.REJECT))

    outcome = await handle.result()
    assert outcome.status is CaseStatus.REJECTED
    assert ledger(shop, order_id) == []


@BOTH
async def test_a_complaint_refund_racing_a_refund_case_never_exceeds_the_order(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = an_order(shop, "600.00")
    settlement: ComplaintRequest = complaint("quality", "refund", "450.00", order_id=order_id)
    refund = RefundRequest(
        request_id=f"req-{uuid.uuid4().hex[:10]}",
        order_id=order_id,
        customer_id="C-100",
        amount=Decimal("450.00"),
        reason="thawed on arrival",
        requested_by="agent-amy",
    )
    handles = await asyncio.gather(start(cases, settlement), start(cases, refund))

    outcomes = [await handle.result() for handle in handles]

    paid = ledger(shop, order_id)
    assert [entry.amount for entry in paid] == [Decimal("450.00")]
    assert order(shop, order_id).refunded == Decimal("450.00")
    assert order(shop, order_id).reserved == Decimal("0")
    complaint_outcome, refund_outcome = (outcome.status for outcome in outcomes)
    # Exactly one was paid: the refund case completed, or the complaint went on to close.
    assert {complaint_outcome, refund_outcome} in (
        {CaseStatus.REJECTED, CaseStatus.COMPLETED},
        {CaseStatus.CLOSED_NO_RESPONSE, CaseStatus.REJECTED},
    )
    assert (refund_outcome is CaseStatus.COMPLETED) == (paid[0].case_id == handles[1].id)


def _events(state: Any) -> list[str]:
    return [entry.event for entry in state.timeline]
