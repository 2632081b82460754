"""RefundWorkflow, specified against the time-skipping server and the real worker."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from infra.db import AuditRecord
from starter import DecisionRefused, case_state, choose_store_credit, decide, start_refund
from tests.case_helpers import eventually, outbox, wait_for_status
from tests.conftest import Cases, Shop
from tests.refund_helpers import ledger, refund
from workflows.models import (
    ApprovalStatus,
    CaseStatus,
    Decision,
    DecisionKind,
    Outcome,
    RefundMethod,
    StoreCreditChoice,
)


async def test_refund_of_exactly_500_needs_no_manager(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("500.00"))
    outcome = await handle.result()
    assert isinstance(outcome, Outcome) or outcome  # typed below
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.COMPLETED
    assert state.approval is None
    [entry] = ledger(shop)
    assert entry.amount == Decimal("500.00")
    assert entry.method == "original_payment"
    [email] = outbox(shop, "refund_confirmed")
    assert email.to_address == "ada@example.com"
    assert "500.00 USD" in email.body and "5-10 business days" in email.body


async def test_refund_over_500_waits_for_manager(client: Client, cases: Cases, shop: Shop) -> None:
    handle = await cases.refund(refund("500.01"))
    state = await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    assert state.approval is not None
    assert state.approval.status is ApprovalStatus.PENDING
    assert set(state.approval.eligible_approvers) == {"sup-sam", "mgr-mia", "mgr-max", "sup-low"}
    assert ledger(shop) == []
    requested = await eventually(lambda: outbox(shop, "approval_requested"))
    assert {e.to_address for e in requested} == {
        f"{s}@exoticmeats.com" for s in ("sup-sam", "mgr-mia", "mgr-max", "sup-low")
    }

    approved = await decide(
        client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE)
    )
    assert approved.status is ApprovalStatus.APPROVED
    outcome = await handle.result()
    assert outcome is not None
    [entry] = ledger(shop)
    assert entry.amount == Decimal("500.01")


async def test_rejected_refund_tells_the_customer(client: Client, cases: Cases, shop: Shop) -> None:
    handle = await cases.refund(refund("750.00"))
    await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await decide(
        client,
        handle.id,
        Decision(approver_id="sup-sam", decision=DecisionKind.REJECT, note="outside policy"),
    )
    await handle.result()
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.REJECTED
    assert ledger(shop) == []
    [email] = outbox(shop, "refund_rejected")
    assert "outside policy" in email.body


@pytest.mark.parametrize(
    ("approver", "message"),
    [
        ("nobody", "unknown approver"),
        ("sup-low", "approval limit 600.00 is below 750.00"),
        ("agent-amy", "requested this case"),
        ("backend", "may not approve"),
    ],
)
async def test_decision_without_authority_is_refused_and_case_keeps_waiting(
    client: Client, cases: Cases, shop: Shop, approver: str, message: str
) -> None:
    handle = await cases.refund(refund("750.00"))
    await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    with pytest.raises(DecisionRefused) as refused:
        await decide(
            client, handle.id, Decision(approver_id=approver, decision=DecisionKind.APPROVE)
        )
    assert refused.value.kind == "NotAuthorized"
    assert message in refused.value.message
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.AWAITING_APPROVAL
    assert state.approval is not None and state.approval.status is ApprovalStatus.PENDING


async def test_second_decision_is_refused(client: Client, cases: Cases, shop: Shop) -> None:
    handle = await cases.refund(refund("750.00"))
    await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.REJECT))
    with pytest.raises(DecisionRefused) as refused:
        await decide(
            client, handle.id, Decision(approver_id="mgr-max", decision=DecisionKind.APPROVE)
        )
    assert refused.value.kind == "NoDecisionPending"
    await handle.result()
    assert (await case_state(client, handle.id)).status is CaseStatus.REJECTED
    assert ledger(shop) == []


async def test_a_decision_after_the_decided_case_closed_is_refused_the_same_way(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.REJECT))
    await handle.result()
    with pytest.raises(DecisionRefused) as refused:
        await decide(
            client, handle.id, Decision(approver_id="mgr-max", decision=DecisionKind.APPROVE)
        )
    assert refused.value.kind == "NoDecisionPending"
    assert refused.value.message == "no decision is pending on this case (already rejected)"
    assert ledger(shop) == []


async def test_unanswered_approval_reminds_escalates_then_expires(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await handle.result()  # time skips through the business-hour timers
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.EXPIRED
    assert state.approval is not None
    assert state.approval.reminded and state.approval.escalated
    assert len(outbox(shop, "approval_reminder")) == 3
    [escalation] = outbox(shop, "approval_escalated")
    assert escalation.to_address == "csmanager@exoticmeats.com"
    [told] = outbox(shop, "refund_expired")
    assert told.to_address == "ada@example.com"
    assert ledger(shop) == []


async def test_store_credit_chosen_before_refund_is_used(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await wait_for_status(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    await choose_store_credit(client, handle.id, StoreCreditChoice(event_id="evt-1"))
    await decide(client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE))
    await handle.result()
    [entry] = ledger(shop)
    assert entry.method == RefundMethod.STORE_CREDIT.value
    [email] = outbox(shop, "refund_confirmed")
    assert "store credit" in email.body and "immediately" in email.body


async def test_refund_to_closed_card_escalates_to_accounting(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("100.00", order_id="ORD-2001", customer_id="C-200"))
    await handle.result()
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.NEEDS_ATTENTION
    assert ledger(shop) == []
    [email] = outbox(shop, "payment_declined")
    assert email.to_address == "accounting@exoticmeats.com"


async def test_same_request_twice_opens_one_case(client: Client, cases: Cases, shop: Shop) -> None:
    request = refund("750.00")
    first = await start_refund(client, request, task_queue=cases.task_queue)
    second = await start_refund(client, request, task_queue=cases.task_queue)
    cases.handles.append(first.handle)
    assert first.case_id == second.case_id == f"refund-{request.request_id}"
    assert first.run_id == second.run_id


async def test_audit_trail_records_every_step(client: Client, cases: Cases, shop: Shop) -> None:
    handle = await cases.refund(refund("20.00"))
    await handle.result()
    with shop.db.transaction() as session:
        events = list(
            session.scalars(
                select(AuditRecord.event)
                .where(AuditRecord.case_id == handle.id)
                .order_by(AuditRecord.seq)
            )
        )
    assert events == [
        "case_opened",
        "verifying",
        "order_verified",
        "refund_started",
        "case_completed",
    ]
    _ = timedelta


async def test_refund_no_longer_refundable_when_approved_is_rejected(
    client: Client, cases: Cases, shop: Shop
) -> None:
    first = await cases.refund(refund("800.00"))
    second = await cases.refund(refund("700.00"))
    await wait_for_status(client, first.id, CaseStatus.AWAITING_APPROVAL)
    await wait_for_status(client, second.id, CaseStatus.AWAITING_APPROVAL)
    for handle in (first, second):
        await decide(
            client, handle.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE)
        )
        await handle.result()
    assert (await case_state(client, first.id)).status is CaseStatus.COMPLETED
    second_state = await case_state(client, second.id)
    assert second_state.status is CaseStatus.REJECTED
    assert second_state.outcome is not None
    assert "only 400.00 of order ORD-1001 is still refundable" in second_state.outcome.reason
    assert [entry.amount for entry in ledger(shop)] == [Decimal("800.00")]
