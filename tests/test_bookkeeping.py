"""Lean bookkeeping: a case's audit lines ride with the work they record.

What must hold whatever the batching: every step and decision is in the audit trail once,
in the order the case took them; a case that waits for a person has its every line and its
status in the database while it waits; and a refund under the threshold schedules fewer
activities than it did when every audit line was an activity of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.carrier import LocalCarrier
from activities.cases import CaseActivities
from activities.orders import LocalOrderSystem
from activities.payments import LocalPaymentGateway
from infra.db import AuditRecord, Case, LedgerEntry, Order, OrderLine, ReturnAuthorization
from settings import Settings
from starter import case_state, decide, receive_package, report_inspection, start_return
from tests.conftest import Cases, Shop
from worker import build_worker
from workflows.models import (
    AuditEntry,
    CaseOpening,
    CaseState,
    CaseStatus,
    CaseType,
    Decision,
    DecisionKind,
    Outcome,
    RefundInstruction,
    RefundReceipt,
    RefundRequest,
)
from workflows.return_models import InspectionResult, PackageReceived, ReturnRequest

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

# Activities a refund under the threshold scheduled when every audit line was an activity:
# open_case, three record_event, verify_refund, record_event, issue_refund, send_notice.
SCHEDULED_BEFORE = 8


def refund(amount: str, order_id: str = "ORD-1001") -> RefundRequest:
    return RefundRequest(
        request_id=f"lean-{uuid.uuid4().hex[:10]}",
        order_id=order_id,
        customer_id="C-100",
        amount=Decimal(amount),
        reason="thawed on arrival",
        requested_by="agent-amy",
    )


def audit_rows(shop: Shop, case_id: str) -> list[AuditRecord]:
    with shop.db.transaction() as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.case_id == case_id).order_by(AuditRecord.seq)
        )
        return list(rows)


def case_row(shop: Shop, case_id: str) -> tuple[str, str]:
    with shop.db.transaction() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case.status, case.step


def assert_trail_is_timeline(shop: Shop, state: CaseState) -> None:
    """The database holds the case's timeline: the same lines, in order, each once."""
    rows = audit_rows(shop, state.case_id)
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    assert [(row.event, row.actor, row.detail, row.at) for row in rows] == [
        (line.event, line.actor, line.detail, line.at) for line in state.timeline
    ]


async def until(
    client: Client, case_id: str, ready: Callable[[CaseState], bool], what: str
) -> CaseState:
    for _ in range(400):
        state = await case_state(client, case_id)
        if ready(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{case_id} never reached: {what}")


async def awaiting_approval(client: Client, handle: WorkflowHandle[Any, Any]) -> CaseState:
    return await until(
        client,
        handle.id,
        lambda state: state.status is CaseStatus.AWAITING_APPROVAL,
        "awaiting approval",
    )


async def asleep(handle: WorkflowHandle[Any, Any]) -> None:
    """Until the case sleeps on a timer: no activity and no workflow task in flight."""
    for _ in range(400):
        timer, task_open, activities_open = False, False, set()
        async for event in handle.fetch_history_events():
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_TIMER_STARTED:
                timer = True
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                task_open = True
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                task_open = False
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                activities_open.add(event.event_id)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                completed = event.activity_task_completed_event_attributes
                activities_open.discard(completed.scheduled_event_id)
        if timer and not task_open and not activities_open:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never slept")


async def scheduled_activities(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


# ---- the trail equals the timeline -----------------------------------------------------------


async def test_a_refund_under_the_threshold_writes_its_timeline_once(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("120.00"))
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.COMPLETED
    state = await case_state(client, handle.id)
    assert [line.event for line in state.timeline] == [
        "case_opened",
        "verifying",
        "order_verified",
        "refund_started",
        "case_completed",
    ]
    assert_trail_is_timeline(shop, state)
    assert case_row(shop, handle.id) == ("completed", state.step)


async def test_a_refund_under_the_threshold_schedules_fewer_activities(
    cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("120.00"))
    await handle.result()

    scheduled = await scheduled_activities(handle)

    assert scheduled == ["open_case", "verify_refund", "issue_refund", "send_notice"]
    assert len(scheduled) < SCHEDULED_BEFORE


async def test_an_approved_refund_writes_its_timeline_once(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)
    await decide(
        client,
        handle.id,
        Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE, event_id="evt-lean"),
    )
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.COMPLETED
    state = await case_state(client, handle.id)
    assert [line.event for line in state.timeline] == [
        "case_opened",
        "verifying",
        "order_verified",
        "email_approval_requested",
        "approval_approved",
        "refund_started",
        "case_completed",
    ]
    assert_trail_is_timeline(shop, state)
    # 12 when every line was an activity of its own.
    assert await scheduled_activities(handle) == [
        "open_case",
        "verify_refund",
        "find_approvers",
        "send_notice",
        "verify_decision",
        "issue_refund",
        "send_notice",
    ]


async def test_a_case_waiting_for_a_manager_has_every_line_and_its_status_written(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)
    await asleep(handle)
    waiting = await case_state(client, handle.id)

    assert_trail_is_timeline(shop, waiting)
    assert case_row(shop, handle.id) == ("awaiting_approval", "Awaiting manager approval")

    # A line recorded while the case sleeps is written at once, not held for later.
    await handle.signal("choose_store_credit", {"event_id": "evt-credit"})
    chosen = await until(
        client,
        handle.id,
        lambda state: state.timeline[-1].event == "store_credit_chosen",
        "store credit chosen",
    )
    for _ in range(100):
        if len(audit_rows(shop, handle.id)) == len(chosen.timeline):
            break
        await asyncio.sleep(0.05)
    assert_trail_is_timeline(shop, chosen)
    assert case_row(shop, handle.id) == ("awaiting_approval", "Awaiting manager approval")


async def test_a_return_writes_its_timeline_once(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    shop.add_order(order_id, "300.00", lines=(("BISON-RIBEYE", 2, "150.00"),))
    now = await env.get_current_time()
    with shop.db.transaction() as session:
        order = session.get(Order, order_id)
        assert order is not None
        order.delivered_at = now - timedelta(days=5)
        assert session.scalar(select(OrderLine).where(OrderLine.order_id == order_id))
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
    waiting = await until(
        client,
        handle.id,
        lambda state: state.status is CaseStatus.AWAITING_RETURN,
        "awaiting the package",
    )
    await asleep(handle)
    waiting = await case_state(client, handle.id)
    assert_trail_is_timeline(shop, waiting)
    with shop.db.transaction() as session:
        ra_number = session.scalar(
            select(ReturnAuthorization.ra_number).where(ReturnAuthorization.case_id == handle.id)
        )
    assert ra_number is not None

    await receive_package(
        client, handle.id, PackageReceived(event_id="scan-1", ra_number=ra_number)
    )
    inspecting = await until(
        client,
        handle.id,
        lambda state: state.status is CaseStatus.INSPECTING,
        "inspecting",
    )
    await asleep(handle)
    inspecting = await case_state(client, handle.id)
    assert_trail_is_timeline(shop, inspecting)
    assert case_row(shop, handle.id) == ("inspecting", "Inspecting the returned items")
    await report_inspection(client, handle.id, InspectionResult(event_id="insp-1", passed=True))
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.COMPLETED
    state = await case_state(client, handle.id)
    assert [line.event for line in state.timeline] == [
        "case_opened",
        "verifying",
        "return_eligible",
        "refund_reserved",
        "ra_issued",
        "package_received",
        "inspection_passed",
        "refund_started",
        "case_completed",
    ]
    assert_trail_is_timeline(shop, state)


async def test_lines_held_when_a_payment_is_declined_are_written_with_the_escalation(
    client: Client, cases: Cases, shop: Shop
) -> None:
    # ORD-2001's payment account is closed: the gateway declines after the reservation.
    request = refund("120.00", order_id="ORD-2001").model_copy(update={"customer_id": "C-200"})
    handle = await cases.refund(request)
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.NEEDS_ATTENTION
    state = await case_state(client, handle.id)
    assert [line.event for line in state.timeline] == [
        "case_opened",
        "verifying",
        "order_verified",
        "refund_started",
        "email_payment_declined",
        "case_needs_attention",
    ]
    assert_trail_is_timeline(shop, state)
    assert case_row(shop, handle.id) == ("needs_attention", state.step)


# ---- retried after the commit ------------------------------------------------------------------


class LosesTheFirstAnswer(CaseActivities):
    """``issue_refund`` whose first attempt commits everything, then fails as if the worker
    died before telling Temporal: the retry must find the lines and write none twice."""

    attempts = 0

    @activity.defn(name="issue_refund")
    def issue_refund(self, instruction: RefundInstruction) -> RefundReceipt:
        self.attempts += 1
        receipt = super().issue_refund(instruction)
        if activity.info().attempt == 1:
            raise RuntimeError("the worker died after the commit")
        return receipt


async def test_an_activity_retried_after_its_commit_writes_no_line_twice(
    env: WorkflowEnvironment, client: Client, shop: Shop, settings: Settings
) -> None:
    flaky = LosesTheFirstAnswer(
        shop.db,
        orders=LocalOrderSystem(shop.db),
        payments=LocalPaymentGateway(shop.db),
        carrier=LocalCarrier(shop.db),
        settings=settings,
    )
    async with build_worker(client, activities=flaky, settings=settings):
        tracker = Cases(client, settings.task_queue)
        try:
            handle = await tracker.refund(refund("120.00"))
            outcome: Outcome = await handle.result()
            state = await case_state(client, handle.id)
        finally:
            await tracker.close_all()

    assert outcome.status is CaseStatus.COMPLETED
    assert flaky.attempts == 2
    assert_trail_is_timeline(shop, state)
    with shop.db.transaction() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.case_id == handle.id)
            )
            == 1
        )


def test_opening_a_case_again_returns_its_rules_and_writes_its_line_once(
    activities: CaseActivities, shop: Shop
) -> None:
    at = datetime.now(UTC)
    opened = AuditEntry(
        case_id="refund-again", seq=1, at=at, event="case_opened", actor="agent-amy", step="Opened"
    )
    opening = CaseOpening(
        case_id="refund-again",
        case_type=CaseType.REFUND,
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal("120.00"),
        requested_by="agent-amy",
        request={},
        opened_at=at,
        audit=(opened,),
    )

    first = activities.open_case(opening)
    again = activities.open_case(opening)

    assert again == first
    assert [(row.seq, row.event) for row in audit_rows(shop, "refund-again")] == [
        (1, "case_opened")
    ]
    assert case_row(shop, "refund-again") == ("received", "Opened")
