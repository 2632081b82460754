"""FreightClaimWorkflow: a shipment the carrier damaged or lost (docs/freight-claims.md).

SOPs Shipping Issues ('Offer replacement shipping for damaged packages', 'Contact shipping
carrier for investigation') and Manager Authorization Required ('Freight claims over $200'):
record the claim with its evidence, verify it against the order, a manager strictly over
FREIGHT_CLAIM_ABOVE, make the customer whole (the shared refund, or a replacement), file the
claim with the carrier and follow it up every CARRIER_FOLLOW_UP_EVERY until it settles or
CARRIER_CLAIM_WAIT passes; then Accounting (ext. 203) takes it over and closes it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.refunding import RefundingCase, relayed

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows import policy
    from workflows.freight_claim_models import (
        AccountingClosing,
        CarrierClaimStatus,
        CarrierSettlement,
        ClaimCheck,
        ClaimFiling,
        ClaimReplacement,
        ClaimResolution,
        ClaimStatus,
        ClaimStatusQuery,
        FreightClaimRequest,
        FreightClaimState,
    )
    from workflows.models import (
        ApprovalKind,
        ApprovalStatus,
        CaseRules,
        CaseStatus,
        CaseType,
        Outcome,
        Recipient,
    )
    from workflows.sla_models import Clock

# The written rule a claim over the threshold needs a manager for (the setting's name).
APPROVAL_RULE = "FREIGHT_CLAIM_ABOVE"


def needs_manager(amount: Decimal, rules: CaseRules) -> bool:
    """Manager Authorization Required: freight claims *over* the threshold (200.00 is not)."""
    return amount > rules.freight_claim.approval_above


@workflow.defn
class FreightClaimWorkflow(RefundingCase):
    """Record, verify, authorize, make whole, file with the carrier, follow it up."""

    case_type = CaseType.FREIGHT_CLAIM
    state_model = FreightClaimState

    @workflow.init
    def __init__(self, request: FreightClaimRequest) -> None:
        super().__init__(
            order_id=request.order_id,
            customer_id=request.customer_id,
            amount=request.amount,
            requested_by=request.requested_by,
        )
        self._request = request
        self._refund_reference: str | None = None
        self._replacements: tuple[str, ...] = ()
        self._carrier_reference: str | None = None
        self._carrier: ClaimStatus | None = None
        self._settlement: CarrierSettlement | None = None
        self._follow_ups = 0
        self._wait_until: datetime | None = None
        self._with_accounting = False
        self._closing: AccountingClosing | None = None

    @workflow.run
    async def run(self, request: FreightClaimRequest) -> Outcome:
        await self.open_case(request)
        await self.record_claim(request)
        refusal = await self.verify(request)
        if refusal is not None:
            return await self.finish(
                CaseStatus.REJECTED, reason=refusal, template="freight_claim_rejected"
            )
        ended = await self.authorize(request)
        if ended is not None:
            return ended
        ended = await self.make_whole(request)
        if ended is not None:
            return ended
        filed_at = await self.file_with_carrier(request)
        answer = await self.follow_up(filed_at)
        if answer is None:
            await self.escalate_to_accounting(filed_at)
            answer = await self.await_accounting()
            if answer is None:
                return await self.closed_by_accounting()
        return await self.close(answer)

    # ---- the steps -----------------------------------------------------------------------

    async def record_claim(self, request: FreightClaimRequest) -> None:
        """Step 1: record the claim with its evidence (photos, the carrier's tracking)."""
        await self.record(
            "claim_recorded",
            actor=request.requested_by,
            status=CaseStatus.VERIFYING,
            step=f"Verifying a {request.kind.value} shipment claim of {request.amount:.2f}",
            detail={
                "kind": request.kind.value,
                "resolution": request.resolution.value,
                "photos": " ".join(request.photos),
                "tracking_number": request.tracking_number or "",
                "skus": " ".join(request.skus),
                **({"linked_case_id": request.linked_case_id} if request.linked_case_id else {}),
            },
        )

    async def verify(self, request: FreightClaimRequest) -> str | None:
        """Step 2: the order exists, is the customer's, and can refund the amount (a refund)
        or has the skus (a replacement); why not, or None."""
        verdict = await self.call(
            CaseActivities.verify_claim,
            ClaimCheck(
                case_id=self.case_id,
                order_id=request.order_id,
                customer_id=request.customer_id,
                amount=request.amount,
                resolution=request.resolution,
                skus=request.skus,
            ),
            summary="Verify the claim against the order",
        )
        return None if verdict.ok else verdict.reason

    async def authorize(self, request: FreightClaimRequest) -> Outcome | None:
        """Step 3: 'Freight claims over $200' - the gate decides; the customer hears a no."""
        if not needs_manager(request.amount, self.rules):
            return None
        approval = await self.gate.await_manager_decision(
            amount=request.amount,
            reason=(
                f"freight claim over {self.rules.freight_claim.approval_above:.2f}: "
                f"{request.kind.value} shipment, order {request.order_id}"
            ),
            requested_by=request.requested_by,
            kind=ApprovalKind.AUTHORIZATION,
            rule=APPROVAL_RULE,
        )
        if approval.status is ApprovalStatus.EXPIRED:
            return await self.finish(
                CaseStatus.EXPIRED,
                reason="manager authorization was not given in time",
                template="freight_claim_expired",
            )
        if approval.status is ApprovalStatus.REJECTED:
            note = f": {approval.note}" if approval.note else ""
            return await self.finish(
                CaseStatus.REJECTED,
                reason=f"not authorized by a manager{note}",
                template="freight_claim_rejected",
            )
        return None

    async def make_whole(self, request: FreightClaimRequest) -> Outcome | None:
        """Step 4: the customer's choice - the money back through the shared refund (once),
        or a replacement shipped (Shipping Issues: 'Offer replacement shipping')."""
        if request.resolution is ClaimResolution.REPLACEMENT:
            await self.ship_replacement(request)
            return None
        method = self.refund_method
        receipt = await self.refund_money(request.amount, status=CaseStatus.RESOLVING)
        if isinstance(receipt, Outcome):
            return receipt
        self._refund_reference = receipt.reference
        await self.notify(
            "freight_claim_refunded",
            Recipient.CUSTOMER,
            event="customer_refunded",
            detail={"reference": receipt.reference, "amount": f"{receipt.amount:.2f}"},
            context={
                "method": method.value.replace("_", " "),
                "timeline": policy.refund_timeline(method),
                "reference": receipt.reference,
            },
        )
        return None

    async def ship_replacement(self, request: FreightClaimRequest) -> None:
        """Step 4 (replacement): one free order per sku, placed once however often retried."""
        await self.record(
            "replacing",
            status=CaseStatus.RESOLVING,
            step=f"Shipping a replacement of {', '.join(request.skus)}",
        )
        placed = await self.effect(
            CaseActivities.place_claim_replacements,
            ClaimReplacement(
                case_id=self.case_id,
                order_id=request.order_id,
                customer_id=request.customer_id,
                skus=request.skus,
                at=workflow.now(),
            ),
            summary="Place the replacement orders",
        )
        self._replacements = placed.order_ids
        await self.notify(
            "freight_claim_replacement",
            Recipient.CUSTOMER,
            event="customer_told_replacement",
            detail={"replacement_orders": " ".join(placed.order_ids)},
            context={
                "items": ", ".join(request.skus),
                "replacement_orders": ", ".join(placed.order_ids),
            },
        )

    async def file_with_carrier(self, request: FreightClaimRequest) -> datetime:
        """Step 5: file the claim with the carrier, once (its key is the case's)."""
        filed_at = workflow.now()
        filed = await self.effect(
            CaseActivities.file_claim,
            ClaimFiling(
                case_id=self.case_id,
                key=f"{self.case_id}/carrier-claim",
                order_id=request.order_id,
                amount=request.amount,
                at=filed_at,
            ),
            summary="File the claim with the carrier",
        )
        self._carrier_reference = filed.reference
        self._carrier = ClaimStatus()
        self._wait_until = filed_at + self.rules.freight_claim.carrier_wait
        await self.record(
            "carrier_claim_filed",
            status=CaseStatus.AWAITING_CARRIER,
            step=f"Filed with the carrier ({filed.reference}); following it up",
            detail={"reference": filed.reference, "amount": f"{request.amount:.2f}"},
        )
        return filed_at

    async def follow_up(self, filed_at: datetime) -> ClaimStatus | None:
        """Step 6: ask the carrier every CARRIER_FOLLOW_UP_EVERY (a carrier_settled event
        ends the wait at once) until it settles or denies; None once CARRIER_CLAIM_WAIT
        has passed without an answer."""
        rules = self.rules.freight_claim
        give_up_at = filed_at + rules.carrier_wait
        while True:
            check_at = min(workflow.now() + rules.follow_up_every, give_up_at)
            # Met when the carrier answers before it must be chased again.
            clock = self.sla.start(
                Clock.CARRIER_FOLLOW_UP,
                due=check_at,
                owner=self._requested_by,
                staff_ids=(self._requested_by,),
                ends_at_due=True,
            )
            if await self.wait_until(
                check_at, "Follow up the carrier claim", self._reported, clock=clock
            ):
                return self._reported_status()
            status = await self.ask_carrier()
            if status.closed:
                return status
            if workflow.now() >= give_up_at:
                return None

    async def ask_carrier(self) -> ClaimStatus:
        """Follow-up: where the claim stands with the carrier."""
        status = await self.call(
            CaseActivities.claim_status,
            ClaimStatusQuery(case_id=self.case_id, key=f"{self.case_id}/carrier-claim"),
            summary="Ask the carrier where the claim stands",
        )
        self._follow_ups += 1
        self._carrier = status
        await self.record(
            "carrier_followed_up",
            detail={"carrier_status": status.status.value, "follow_up": str(self._follow_ups)},
        )
        return status

    async def close(self, answer: ClaimStatus) -> Outcome:
        """Step 7: the carrier settled or denied; the customer was made whole already."""
        self._carrier = answer
        settled = answer.status is CarrierClaimStatus.SETTLED
        amount = f"{answer.settled_amount or Decimal('0'):.2f}"
        await self.record(
            f"carrier_claim_{answer.status.value}",
            detail={"reference": self._carrier_reference or "", "settled_amount": amount},
        )
        return await self.finish(
            CaseStatus.COMPLETED,
            reason=(
                f"the carrier settled the claim for {amount}"
                if settled
                else "the carrier denied the claim; the customer was made whole all the same"
            ),
            outcome=Outcome(
                status=CaseStatus.COMPLETED,
                reason=f"carrier claim {answer.status.value}",
                amount=self._amount,
                method=self.refund_method if self._refund_reference else None,
                reference=self._refund_reference or self._carrier_reference,
            ),
        )

    async def escalate_to_accounting(self, filed_at: datetime) -> None:
        """Step 7 (no answer): CARRIER_CLAIM_WAIT passed - Accounting (ext. 203) takes it over."""
        days = self.rules.freight_claim.carrier_wait.days
        self._with_accounting = True
        await self.notify(
            "freight_claim_accounting",
            Recipient.DEPARTMENT,
            department="accounting",
            status=CaseStatus.WITH_ACCOUNTING,
            step=f"With Accounting: claim {self._carrier_reference} unsettled after {days} days",
            event="escalated_to_accounting",
            detail={"reference": self._carrier_reference or ""},
            context={
                "reference": self._carrier_reference or "",
                "filed_on": f"{filed_at:%Y-%m-%d}",
                "days": str(days),
                "follow_ups": str(self._follow_ups),
            },
        )

    async def await_accounting(self) -> ClaimStatus | None:
        """Step 8: Accounting owns the claim until it closes it (``accounting_closed``); a late
        settlement relayed from the carrier closes it too (its answer, or None)."""
        await self.wait_condition(lambda: self._closing is not None or self._reported())
        return self._reported_status() if self._closing is None else None

    async def closed_by_accounting(self) -> Outcome:
        """Step 8 (cont.): Accounting closed the claim; the customer was made whole already."""
        closing = self._closing
        assert closing is not None
        recovered = closing.settled_amount
        await self.record(
            "accounting_closed",
            actor=closing.closed_by,
            detail={
                "settled_amount": f"{recovered:.2f}" if recovered is not None else "",
                "note": closing.note,
                **relayed(closing.on_behalf_of),
            },
        )
        if recovered is not None:
            self._carrier = ClaimStatus(status=CarrierClaimStatus.SETTLED, settled_amount=recovered)
        note = f": {closing.note}" if closing.note else ""
        return await self.finish(
            CaseStatus.COMPLETED,
            reason=f"closed by Accounting{note}",
            outcome=Outcome(
                status=CaseStatus.COMPLETED,
                reason=f"closed by Accounting{note}",
                amount=self._amount,
                method=self.refund_method if self._refund_reference else None,
                reference=self._refund_reference or self._carrier_reference,
            ),
        )

    # ---- the case's messages ---------------------------------------------------------------

    @workflow.signal(name="carrier_settled")
    async def carrier_settled(self, payload: dict[str, Any]) -> None:
        """The carrier settled (relayed by the backend): ends the follow-up wait at once."""
        settlement = await self.parse_signal("carrier_settled", CarrierSettlement, payload)
        if settlement is None:
            return
        closed = self._carrier is not None and self._carrier.closed
        if self._settlement is not None or closed or self._closing is not None:
            await self.record(
                "carrier_settled_ignored",
                actor=settlement.reported_by,
                detail={"reason": "the carrier's answer is already recorded"},
            )
            return
        self._settlement = settlement
        await self.record(
            "carrier_settled_reported",
            actor=settlement.reported_by,
            detail={
                "settled_amount": f"{settlement.settled_amount:.2f}",
                "note": settlement.note,
                **relayed(settlement.on_behalf_of),
            },
        )

    @workflow.update(name="close_claim")
    async def close_claim(self, closing: AccountingClosing) -> FreightClaimState:
        """Accounting closes the claim it took over; refused before it was handed over."""
        if self._closing is None:
            self._closing = closing
        return self.state_as(FreightClaimState)

    @close_claim.validator
    def _validate_close(self, closing: AccountingClosing) -> None:
        refusal = self._closing_refusal(closing)
        if refusal is not None:
            raise ApplicationError(refusal[1], type=refusal[0], non_retryable=True)

    @workflow.signal(name="accounting_closed")
    async def accounting_closed(self, payload: dict[str, Any]) -> None:
        """The same closing, fire-and-forget (Temporal UI); an early one is recorded, ignored."""
        closing = await self.parse_signal("accounting_closed", AccountingClosing, payload)
        if closing is None:
            return
        refusal = self._closing_refusal(closing)
        if refusal is not None:
            await self.record(
                "accounting_closed_ignored", actor=closing.closed_by, detail={"reason": refusal[1]}
            )
            return
        self._closing = self._closing or closing

    def _closing_refusal(self, closing: AccountingClosing) -> tuple[str, str] | None:
        """Why Accounting cannot close the claim now (kind, message), or None."""
        if self._closing is not None:
            if self._closing.event_id == closing.event_id:
                return None  # the same closing again: a retry
            return ("AlreadyClosed", "Accounting already closed this claim")
        if not self._with_accounting:
            return (
                "NotWithAccounting",
                f"the claim is not with Accounting ({self._status}); the carrier is still "
                "being followed up",
            )
        return None

    def _reported(self) -> bool:
        return self._settlement is not None

    def _reported_status(self) -> ClaimStatus:
        assert self._settlement is not None
        return ClaimStatus(
            status=CarrierClaimStatus.SETTLED, settled_amount=self._settlement.settled_amount
        )

    # ---- what callers and emails see -------------------------------------------------------

    def notice_context(self) -> dict[str, str]:
        return {
            **super().notice_context(),
            "kind": self._request.kind.value,
            "carrier_reference": self._carrier_reference or "",
        }

    def extra_state(self) -> dict[str, Any]:
        request, carrier = self._request, self._carrier
        return {
            **super().extra_state(),
            "kind": request.kind,
            "resolution": request.resolution,
            "skus": request.skus,
            "photos": request.photos,
            "tracking_number": request.tracking_number,
            "linked_case_id": request.linked_case_id,
            "refund_reference": self._refund_reference,
            "replacement_order_ids": self._replacements,
            "carrier_reference": self._carrier_reference,
            "carrier_status": carrier.status if carrier else None,
            "settled_amount": carrier.settled_amount if carrier else None,
            "follow_ups": self._follow_ups,
            "carrier_wait_until": self._wait_until,
            "escalated_to_accounting": self._with_accounting,
        }
