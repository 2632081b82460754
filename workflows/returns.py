"""ReturnWorkflow: the SOP 'Returns Processing'.

Verify eligibility, issue an RA number, send the shipping instructions, wait (weeks, if need
be) for the package, then refund upon inspection by the refund procedure's own rules.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.refunding import RefundingCase, relayed

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows import visibility
    from workflows.models import (
        ApprovalStatus,
        CaseState,
        CaseStatus,
        CaseType,
        OrderVerdict,
        Outcome,
        Recipient,
        RefundCheck,
        Refusal,
    )
    from workflows.return_models import (
        InspectionResult,
        PackageReceived,
        RaChange,
        RaIssue,
        RaIssued,
        RaState,
        RaStatus,
        ReturnCheck,
        ReturnEligibility,
        ReturnRequest,
        ReturnState,
        ReturnVerdict,
    )
    from workflows.sla_models import Clock, Owner, RunningClock


# The items' value is reserved on the order before the RA is minted (issue 7, item 2).
HOLD_BEFORE_RA = "return-holds-refund-before-ra"


@workflow.defn
class ReturnWorkflow(RefundingCase):
    """Eligibility, RA number, instructions, the package, inspection, refund."""

    case_type = CaseType.RETURN
    state_model = ReturnState

    @workflow.init
    def __init__(self, request: ReturnRequest) -> None:
        super().__init__(
            order_id=request.order_id,
            customer_id=request.customer_id,
            amount=None,
            requested_by=request.requested_by,
        )
        self._request = request
        self._value = Decimal("0")
        self.ra: RaState | None = None
        self._receipt: PackageReceived | None = None
        self._inspection: InspectionResult | None = None
        self._holds_refund = False
        self._ra_clock: RunningClock | None = None

    @workflow.run
    async def run(self, request: ReturnRequest) -> Outcome:
        await self.open_case(request)
        eligibility = await self.verify_eligibility(request)
        if eligibility.verdict is ReturnVerdict.INELIGIBLE:
            return await self.finish(
                CaseStatus.REJECTED, reason=eligibility.reason, template="return_rejected"
            )
        # Cases opened before the hold existed replay (and go on) without it.
        self._holds_refund = workflow.patched(HOLD_BEFORE_RA)
        if self._holds_refund:
            covered = await self.reserve(self._value)
            if not covered.ok:
                return await self.finish(
                    CaseStatus.REJECTED, reason=covered.reason, template="return_rejected"
                )
        outside_window = eligibility.verdict is ReturnVerdict.OUTSIDE_WINDOW
        if outside_window and not await self.exception_granted(
            "RETURN_WINDOW", self._value, eligibility.reason, request.requested_by
        ):
            return await self.exception_refused(eligibility.reason)

        issued = await self.issue_ra(request)
        if issued.ra is None:
            return await self.finish(
                CaseStatus.REJECTED, reason=issued.refusal, template="return_rejected"
            )
        await self.send_instructions(issued.ra)
        if not await self.await_package(issued.ra):
            return await self.expire(issued.ra)

        inspection = await self.await_inspection()
        amount = inspection.refund_amount or self._value
        if not inspection.passed:
            why = "the returned items did not pass inspection"
            why += f": {inspection.notes}" if inspection.notes else ""
            if not inspection.request_exception:
                return await self.finish(
                    CaseStatus.REJECTED, reason=why, template="return_rejected"
                )
            if not await self.exception_granted(
                "RETURN_INSPECTION", amount, why, inspection.inspected_by
            ):
                return await self.exception_refused(why)
        return await self.refund(amount)

    # ---- the steps -----------------------------------------------------------------------

    async def verify_eligibility(self, request: ReturnRequest) -> ReturnEligibility:
        """Step 1: 'Verify return eligibility based on policy'."""
        await self.record("verifying", status=CaseStatus.VERIFYING, step="Verifying eligibility")
        check = ReturnCheck(
            case_id=self.case_id,
            order_id=request.order_id,
            customer_id=request.customer_id,
            items=request.items,
            at=workflow.now(),
            window=self.rules.return_window,
        )
        eligibility = await self.call(
            CaseActivities.check_return_eligibility, check, summary="Check eligibility"
        )
        if eligibility.verdict is not ReturnVerdict.INELIGIBLE:
            self._value = self._amount = eligibility.value
            workflow.upsert_search_attributes([visibility.AMOUNT.value_set(float(self._value))])
        await self.record(
            f"return_{eligibility.verdict.value}",
            detail={"reason": eligibility.reason, "value": f"{eligibility.value:.2f}"},
        )
        return eligibility

    async def exception_refused(self, why: str) -> Outcome:
        approval = self.gate.state
        assert approval is not None
        if approval.status is ApprovalStatus.EXPIRED:
            return await self.finish(
                CaseStatus.EXPIRED,
                reason=f"{why}, and no manager decided on an exception in time",
                template="return_rejected",
            )
        note = f" ({approval.note})" if approval.note else ""
        return await self.finish(
            CaseStatus.REJECTED,
            reason=f"{why}, and a manager did not grant an exception{note}",
            template="return_rejected",
        )

    async def issue_ra(self, request: ReturnRequest) -> RaIssued:
        """Step 2: 'Issue return authorization (RA) number', minted once by the database."""
        issued_at = workflow.now()
        issue = RaIssue(
            case_id=self.case_id,
            order_id=request.order_id,
            customer_id=request.customer_id,
            items=request.items,
            issued_at=issued_at,
            expires_at=issued_at + self.rules.ra_expires_after,
        )
        issued = await self.effect(
            CaseActivities.issue_ra_number, issue, summary="Mint the RA number"
        )
        if issued.ra is not None:
            # A retried mint returns the first row, so its instants, not ours, are the RA's.
            self.ra = issued.ra
            workflow.upsert_search_attributes([visibility.RA_NUMBER.value_set(self.ra.ra_number)])
        return issued

    async def send_instructions(self, ra: RaState) -> None:
        """Step 3: 'Provide return shipping instructions'."""
        # The customer's deadline: its row is written with the instructions.
        self._ra_clock = self.sla.start(Clock.RA_EXPIRY, due=ra.expires_at, owner=Owner.CUSTOMER)
        await self.notify(
            "return_instructions",
            Recipient.CUSTOMER,
            status=CaseStatus.AWAITING_RETURN,
            step=f"Waiting for the package with {ra.ra_number}",
            event="ra_issued",
            detail={"ra_number": ra.ra_number, "expires_at": ra.expires_at.isoformat()},
        )

    async def await_package(self, ra: RaState) -> bool:
        """Step 4: wait for the warehouse; remind the customer, then let the RA expire."""
        remind_at = ra.issued_at + self.rules.return_reminder_after
        if remind_at < ra.expires_at and not await self._received_by(
            remind_at, "Remind the customer to ship the return"
        ):
            await self.notify(
                "return_reminder", Recipient.CUSTOMER, detail={"ra_number": ra.ra_number}
            )
        received = await self._received_by(ra.expires_at, f"{ra.ra_number} expires")
        await self.sla.stop(self._ra_clock, met=received)
        if not received:
            # Refuse receipts from this instant on, before the expiry is even written down.
            self.ra = ra.model_copy(update={"status": RaStatus.EXPIRED})
            return False
        assert self.ra is not None and self._receipt is not None
        change = RaChange(case_id=self.case_id, at=self.ra.received_at or workflow.now())
        if not self.lean:
            await self.call(CaseActivities.mark_ra_received, change, summary="Mark the RA received")
        # A lean case writes the line with the RA's change, in one transaction.
        await self.record(
            "package_received",
            actor=self._receipt.received_by,
            detail={
                "ra_number": ra.ra_number,
                "note": self._receipt.note,
                **relayed(self._receipt.on_behalf_of),
            },
            status=CaseStatus.INSPECTING,
            step="Inspecting the returned items",
        )
        if self.lean:
            await self.effect(
                CaseActivities.mark_ra_received, change, summary="Mark the RA received"
            )
        return True

    async def _received_by(self, deadline: datetime, what: str) -> bool:
        remaining = deadline - workflow.now()
        if self._receipt is None and remaining > timedelta(0):
            with contextlib.suppress(TimeoutError):  # the deadline passed without a package
                await self.wait_condition(
                    lambda: self._receipt is not None, timeout=remaining, timeout_summary=what
                )
        return self._receipt is not None

    async def expire(self, ra: RaState) -> Outcome:
        """The RA expired unused: it can no longer be received, and the customer is told."""
        change = RaChange(case_id=self.case_id, at=workflow.now())
        await self.effect(CaseActivities.expire_ra, change, summary=f"Expire {ra.ra_number}")
        return await self.finish(
            CaseStatus.EXPIRED,
            reason=f"the package did not arrive before {ra.ra_number} expired",
            template="return_expired",
        )

    async def await_inspection(self) -> InspectionResult:
        """Step 5: the warehouse inspects the items (no deadline: the package is with us)."""
        await self.wait_condition(lambda: self._inspection is not None)
        inspection = self._inspection
        assert inspection is not None
        amount = inspection.refund_amount
        await self.record(
            "inspection_passed" if inspection.passed else "inspection_failed",
            actor=inspection.inspected_by,
            detail={
                "notes": inspection.notes,
                "refund_amount": f"{amount:.2f}" if amount is not None else "",
                "exception_requested": str(inspection.request_exception).lower(),
                **relayed(inspection.on_behalf_of),
            },
        )
        return inspection

    async def refund(self, amount: Decimal) -> Outcome:
        """Step 6: 'Process refund upon receipt and inspection', by the refund rules."""
        self._amount = amount
        if self._holds_refund:
            # Held since before the RA; inspection may refund less, never more.
            verdict = OrderVerdict(ok=True, refundable=amount)
            if amount != self._holding:
                verdict = await self.reserve(amount)
        else:
            check = RefundCheck(
                order_id=self._order_id, customer_id=self._customer_id, amount=amount
            )
            verdict = await self.call(
                CaseActivities.verify_refund, check, summary="Check the order can refund this"
            )
        if not verdict.ok:
            return await self.finish(
                CaseStatus.REJECTED, reason=verdict.reason, template="return_rejected"
            )
        approval = self.gate.state
        if (
            approval is not None
            and approval.status is ApprovalStatus.APPROVED
            and amount <= approval.amount
        ):
            # The manager who granted the exception had authority for this amount: one
            # decision authorizes both, so nobody is asked the same question twice.
            return await self.issue_refund(amount)
        assert self.ra is not None
        return await self.settle_refund(
            amount,
            reason=f"return {self.ra.ra_number}: {self._request.reason}",
            requested_by=self._requested_by,
        )

    # ---- the warehouse's messages ----------------------------------------------------------

    @workflow.update(name="receive_package")
    async def receive_package(self, received: PackageReceived) -> RaState:
        """The package is in; the answer is the RA as it now stands."""
        if not self._is_repeat(received):
            self._accept_package(received)
        assert self.ra is not None  # the validator let it through, so an RA exists
        return self.ra

    @receive_package.validator
    def _validate_receive_package(self, received: PackageReceived) -> None:
        if self._is_repeat(received):
            return
        refusal = self.package_refusal(received.ra_number)
        if refusal:
            raise ApplicationError(refusal.message, type=refusal.kind, non_retryable=True)

    @workflow.signal(name="package_received")
    async def package_received(self, payload: dict[str, Any]) -> None:
        """The same receipt, fire-and-forget. A refused one is recorded and ignored."""
        received = await self.parse_signal("package_received", PackageReceived, payload)
        if received is None:
            return
        refusal = self.package_refusal(received.ra_number)
        if refusal:
            await self.record(
                "package_received_ignored",
                actor=received.received_by,
                detail={"reason": refusal.message},
            )
            return
        self._accept_package(received)

    def package_refusal(self, ra_number: str) -> Refusal | None:
        """Why this case cannot take a package for ``ra_number`` now, from its state alone."""
        ra = self.ra
        if ra is None:
            return Refusal("UnknownRA", f"{ra_number}: no RA has been issued on this case")
        if ra_number != ra.ra_number:
            return Refusal("UnknownRA", f"{ra_number} is not this case's RA ({ra.ra_number})")
        if ra.status is RaStatus.RECEIVED:
            when = _show(ra.received_at or ra.issued_at)
            return Refusal("AlreadyReceived", f"{ra_number} was already received on {when}")
        if ra.status is RaStatus.EXPIRED or workflow.now() >= ra.expires_at:
            return Refusal(
                "RaExpired",
                f"{ra_number} expired on {_show(ra.expires_at)} and can no longer be received",
            )
        return None

    def _is_repeat(self, message: PackageReceived | InspectionResult) -> bool:
        """The same message delivered again (a retried call): answer it, act once."""
        accepted = self._receipt if isinstance(message, PackageReceived) else self._inspection
        return accepted is not None and accepted.event_id == message.event_id

    def _accept_package(self, received: PackageReceived) -> None:
        assert self.ra is not None
        self._seen_events.add(received.event_id)
        self._receipt = received
        self.ra = self.ra.model_copy(
            update={"status": RaStatus.RECEIVED, "received_at": workflow.now()}
        )

    @workflow.update(name="complete_inspection")
    async def complete_inspection(self, result: InspectionResult) -> CaseState:
        """The warehouse's verdict; the answer is the case as the verdict lands."""
        if not self._is_repeat(result):
            self._accept_inspection(result)
        return self.state()

    @complete_inspection.validator
    def _validate_complete_inspection(self, result: InspectionResult) -> None:
        if self._is_repeat(result):
            return
        refusal = self.inspection_refusal(result)
        if refusal:
            raise ApplicationError(refusal.message, type=refusal.kind, non_retryable=True)

    @workflow.signal(name="inspection_completed")
    async def inspection_completed(self, payload: dict[str, Any]) -> None:
        """The same verdict, fire-and-forget. A refused one is recorded and ignored."""
        result = await self.parse_signal("inspection_completed", InspectionResult, payload)
        if result is None:
            return
        refusal = self.inspection_refusal(result)
        if refusal:
            await self.record(
                "inspection_completed_ignored",
                actor=result.inspected_by,
                detail={"reason": refusal.message},
            )
            return
        self._accept_inspection(result)

    def inspection_refusal(self, result: InspectionResult) -> Refusal | None:
        if self._receipt is None:
            return Refusal("NotInspecting", "no package has been received on this case yet")
        if self._inspection is not None:
            return Refusal("AlreadyInspected", "this case's inspection was already reported")
        if result.refund_amount is not None and result.refund_amount > self._value:
            return Refusal(
                "InvalidAmount",
                f"refund_amount {result.refund_amount:.2f} exceeds the returned items' "
                f"price {self._value:.2f}",
            )
        return None

    def _accept_inspection(self, result: InspectionResult) -> None:
        self._seen_events.add(result.event_id)
        self._inspection = result

    # ---- what callers and emails see -------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "items": self._request.items,
            "linked_case_id": self._request.linked_case_id,
        }
        if self.ra is not None:
            fields |= {
                "ra_number": self.ra.ra_number,
                "ra_status": self.ra.status,
                "ra_expires_at": self.ra.expires_at,
                "ra_received_at": self.ra.received_at,
            }
        return {**super().extra_state(), **fields}

    def notice_context(self) -> dict[str, str]:
        context = {**super().notice_context(), "items": self._items()}
        if self.ra is not None:
            context |= {
                "ra_number": self.ra.ra_number,
                "expires_on": _show(self.rules.calendar.local(self.ra.expires_at)),
            }
        return context

    def _items(self) -> str:
        return ", ".join(f"{item.quantity} x {item.sku}" for item in self._request.items)


def _show(instant: datetime) -> str:
    return f"{instant:%B} {instant.day}, {instant.year}, {instant:%H:%M %Z}"
