"""Procedures with faults built in, to specify what every procedure inherits on failure.

They subclass ``CaseWorkflow`` exactly as a real procedure does and add nothing about
failures: whatever they do on a fault comes from the shared base.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.case import CaseWorkflow

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows.models import (
        CaseStatus,
        CaseType,
        Outcome,
        RefundInstruction,
        RefundMethod,
        RefundRequest,
    )


class _Procedure(CaseWorkflow):
    case_type = CaseType.REFUND

    def __init__(self, request: RefundRequest) -> None:
        super().__init__(
            order_id=request.order_id,
            customer_id=request.customer_id,
            amount=request.amount,
            requested_by=request.requested_by,
        )


@workflow.defn
class ReadsAMissingFact(_Procedure):
    """A bug in workflow code: a dictionary lookup of a key that is not there."""

    @workflow.init
    def __init__(self, request: RefundRequest) -> None:
        super().__init__(request)

    @workflow.run
    async def run(self, request: RefundRequest) -> Outcome:
        await self.open_case(request)
        await self.record("verifying", status=CaseStatus.VERIFYING, step="Verifying the order")
        facts: dict[str, str] = {}
        return Outcome(status=CaseStatus.COMPLETED, reason=facts["verdict"])


@workflow.defn
class PaysWithTwoAttempts(_Procedure):
    """Pays with a retry policy that gives up after two attempts."""

    @workflow.init
    def __init__(self, request: RefundRequest) -> None:
        super().__init__(request)

    @workflow.run
    async def run(self, request: RefundRequest) -> Outcome:
        await self.open_case(request)
        await self.record("refund_started", status=CaseStatus.REFUNDING, step="Paying")
        instruction = RefundInstruction(
            case_id=self.case_id,
            idempotency_key=f"{self.case_id}/refund",
            order_id=request.order_id,
            customer_id=request.customer_id,
            amount=request.amount,
            method=RefundMethod.ORIGINAL_PAYMENT,
            issued_at=workflow.now(),
        )
        two = RetryPolicy(initial_interval=timedelta(milliseconds=10), maximum_attempts=2)
        await self.call(CaseActivities.issue_refund, instruction, summary="Pay", retry=two)
        return await self.finish(CaseStatus.COMPLETED, reason="paid")
