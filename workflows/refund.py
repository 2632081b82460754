"""RefundWorkflow: the SOP 'How to Process a Refund'."""

from __future__ import annotations

from temporalio import workflow

from workflows.refunding import RefundingCase

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows.models import (
        CaseStatus,
        CaseType,
        OrderVerdict,
        Outcome,
        RefundCheck,
        RefundRequest,
    )


@workflow.defn
class RefundWorkflow(RefundingCase):
    """Verify, authorize over the threshold, refund by the chosen method, confirm."""

    case_type = CaseType.REFUND

    @workflow.init
    def __init__(self, request: RefundRequest) -> None:
        super().__init__(
            order_id=request.order_id,
            customer_id=request.customer_id,
            amount=request.amount,
            requested_by=request.requested_by,
        )

    @workflow.run
    async def run(self, request: RefundRequest) -> Outcome:
        await self.open_case(request)
        verdict = await self.verify_order(request)
        if not verdict.ok:
            return await self.finish(
                CaseStatus.REJECTED, reason=verdict.reason, template="refund_rejected"
            )
        return await self.settle_refund(
            request.amount, reason=request.reason, requested_by=request.requested_by
        )

    async def verify_order(self, request: RefundRequest) -> OrderVerdict:
        """Step 1: the order exists, is the customer's, and still has this much refundable."""
        await self.record("verifying", status=CaseStatus.VERIFYING, step="Verifying the order")
        check = RefundCheck(
            order_id=request.order_id, customer_id=request.customer_id, amount=request.amount
        )
        verdict = await self.call(CaseActivities.verify_refund, check, summary="Verify the order")
        await self.record(
            "order_verified" if verdict.ok else "order_not_refundable",
            detail={"refundable": f"{verdict.refundable:.2f}", "reason": verdict.reason},
        )
        return verdict
