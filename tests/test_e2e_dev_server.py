"""End to end on the real Temporal dev server with the production worker.

Everything as in production but the process boundaries: ``worker.build_worker`` wires its
own activities from the database URL, the case is started and decided with the typed
client in ``starter``, and it is found through visibility the way ops find it in the UI.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from infra.db import Case, LedgerEntry, OutboxEmail
from settings import Settings
from starter import StartedCase, decide, start_refund
from tests.conftest import Shop
from worker import build_worker
from workflows.models import (
    ApprovalStatus,
    CaseStatus,
    Decision,
    DecisionKind,
    Outcome,
    RefundMethod,
    RefundRequest,
)


async def listed_as(client: Client, case_id: str, status: str, *, seconds: float = 15) -> bool:
    """Whether visibility lists ``case_id`` under ``CaseStatus = status`` within ``seconds``
    (the index is eventually consistent)."""
    query = f'CaseStatus = "{status}" AND CaseType = "refund"'
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if any([wf.id async for wf in client.list_workflows(query) if wf.id == case_id]):
            return True
        await asyncio.sleep(0.2)
    return False


async def test_a_refund_over_500_is_found_awaiting_approval_then_approved_and_paid(
    dev_env: WorkflowEnvironment, shop: Shop, settings: Settings, database_url: str
) -> None:
    client = dev_env.client
    request = RefundRequest(
        request_id=f"e2e-{uuid.uuid4().hex[:10]}",
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal("750.00"),
        reason="thawed on arrival",
        requested_by="agent-amy",
    )
    started: StartedCase | None = None
    async with build_worker(client, database_url=database_url, settings=settings):
        try:
            started = await start_refund(client, request, task_queue=settings.task_queue)
            assert started.case_id == f"refund-{request.request_id}"

            assert await listed_as(client, started.case_id, "awaiting_approval")

            approval = await decide(
                client,
                started.case_id,
                Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE, event_id="e2e-1"),
            )
            assert approval.status is ApprovalStatus.APPROVED
            outcome: Outcome = await started.handle.result()
        finally:
            if started is not None:
                description = await started.handle.describe()
                if description.status is WorkflowExecutionStatus.RUNNING:
                    await started.handle.terminate(reason="test finished")

    assert (outcome.status, outcome.amount, outcome.method) == (
        CaseStatus.COMPLETED,
        Decimal("750.00"),
        RefundMethod.ORIGINAL_PAYMENT,
    )
    assert (await started.handle.describe()).status is WorkflowExecutionStatus.COMPLETED
    assert await listed_as(client, started.case_id, "completed")
    with shop.db.transaction() as session:
        ledger = list(session.scalars(select(LedgerEntry)))
        case = session.get(Case, started.case_id)
        confirmations = list(
            session.scalars(select(OutboxEmail).where(OutboxEmail.template == "refund_confirmed"))
        )
    assert [(e.case_id, e.amount, e.reference) for e in ledger] == [
        (started.case_id, Decimal("750.00"), outcome.reference)
    ]
    assert case is not None and case.status == CaseStatus.COMPLETED.value
    [email] = confirmations
    assert email.to_address == "ada@example.com"
    assert "750.00" in email.subject + email.body
    assert str(outcome.reference) in email.body
