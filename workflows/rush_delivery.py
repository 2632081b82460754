"""The delivery of a rush order: the follow-up on the promised day and, when it is late or
missed, the SOP 'Shipping Issues' (docs/rush-orders.md, steps 5 and 6).

``RushDelivery`` is the base of ``RushOrderWorkflow``: it holds what the case knows of the
parcel (the carrier's tracking, its events) and the steps after the order is expedited:
investigate, refund the rush fee once, redeliver, escalate, hand a lost parcel to a freight
claim. The quote and the fee (``_quote``, ``_charge``) are the rush order's, set before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import workflow

from workflows.journal import ACTIVITY_TIMEOUT, DEFAULT_RETRY
from workflows.refunding import RefundingCase, relayed

# Only models and pure helpers pass through the sandbox (workflows/sandbox.py).
with workflow.unsafe.imports_passed_through():
    from activities.cases import CaseActivities
    from workflows import policy, visibility
    from workflows.freight_claim_models import ClaimHandOff
    from workflows.models import ApproverLookup, CaseStatus, Outcome, Recipient
    from workflows.rush_models import (
        CarrierReport,
        CarrierRequest,
        CarrierRequestKind,
        DeliveryQuery,
        DeliveryState,
        RushQuote,
        Tracking,
    )


class RushDelivery(RefundingCase):
    """Follow an expedited order's delivery with the carrier, and settle it when late."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._quote: RushQuote | None = None  # as quoted, moved when accepted past the cut-off
        self._charge: str | None = None  # the rush fee's payment reference, once charged
        self._tracking = Tracking()
        self._delivered: CarrierReport | None = None
        self._attempts_reported = 0  # delivery attempts the carrier told us of by event
        self._redeliveries = 0  # attempts a redelivery was arranged for
        self._fee_refunded = False
        self._escalated = False
        self._freight_claim: str | None = None  # the claim case a lost parcel handed off to

    async def follow_delivery(self) -> Outcome:
        """Step 5: 'Follow up to ensure on-time delivery' at the end of the promised day."""
        quote = self._quote
        assert quote is not None
        await self.wait_until(
            policy.ship_cutoff(self.rules, quote.ships_on),
            "Leaves with the expedited pickup",
            self._arrived,
        )
        if not self._arrived():
            await self.record(
                "in_transit",
                status=CaseStatus.IN_TRANSIT,
                step=f"In transit, promised for {quote.promised_on.isoformat()}",
            )
        due = policy.delivery_due(self.rules, quote.promised_on)
        if not await self.wait_until(due, "Promised delivery: check it arrived", self._arrived):
            await self.track()
        if self.delivered:
            return await self.finish(
                CaseStatus.COMPLETED, reason="delivered on time", template="rush_delivered"
            )
        return await self.handle_late(due)

    async def handle_late(self, due: datetime) -> Outcome:
        """Step 6 (Shipping Issues): investigate, refund the fee once, tell the customer, check
        every business day; redeliver a missed delivery; a supervisor after LATE_ESCALATE_AFTER."""
        quote = self._quote
        assert quote is not None
        calendar, rush = self.rules.calendar, self.rules.rush
        await self.record(
            "delivery_late",
            status=CaseStatus.LATE,
            step=f"Late: promised for {quote.promised_on.isoformat()}",
            detail={"carrier_state": self._tracking.state.value},
        )
        await self.ask_carrier(CarrierRequestKind.INVESTIGATION, "investigation")
        refunded = await self.refund_fee(quote)
        if isinstance(refunded, Outcome):
            return refunded
        await self.notify(
            "rush_late",
            Recipient.CUSTOMER,
            event="customer_told_late",
            context={
                "promised": self._day(quote),
                "refund": (
                    f"We have refunded your rush fee of {quote.fee:.2f}.\n" if refunded else ""
                ),
            },
        )
        escalate_at = calendar.add_business_days(due, rush.late_escalate_after_days)
        give_up_at = calendar.add_business_days(due, rush.late_give_up_after_days)
        while not self.delivered:
            if self._tracking.state is DeliveryState.LOST:
                return await self.lost()
            await self.redeliver_missed()
            now = workflow.now()
            if now >= escalate_at and not self._escalated:
                await self.escalate_late(quote)
            if now >= give_up_at:
                await self.notify(
                    "rush_not_delivered",
                    Recipient.CS_MANAGER,
                    event="late_delivery_handed_over",
                    context={
                        "promised": self._day(quote),
                        "days": str(rush.late_give_up_after_days),
                    },
                )
                return await self.finish(
                    CaseStatus.NEEDS_ATTENTION,
                    reason=f"still not delivered {rush.late_give_up_after_days} business days "
                    "after the promise; a person must take it over",
                )
            check_at = calendar.add_business_days(now, 1)
            if not self._escalated:
                check_at = min(check_at, escalate_at)
            if not await self.wait_until(
                check_at, "Check the delivery again", self._news_since(self._carrier_news())
            ):
                await self.track()
        return await self.finish(
            CaseStatus.COMPLETED,
            reason="delivered late; the rush fee was refunded" if refunded else "delivered late",
            template="rush_delivered_late",
        )

    # ---- pieces of the late path -------------------------------------------------------------

    async def track(self) -> Tracking:
        """Shipping Issues: 'Verify delivery status and tracking' with the carrier."""
        tracking = await self.call(
            CaseActivities.track_delivery,
            DeliveryQuery(case_id=self.case_id, order_id=self._order_id),
            summary="Ask the carrier where the parcel is",
        )
        self._tracking = tracking
        await self.record(
            "delivery_checked",
            detail={
                "carrier_state": tracking.state.value,
                "tracking_number": tracking.tracking_number or "",
            },
        )
        return tracking

    @property
    def delivered(self) -> bool:
        return self._delivered is not None or self._tracking.state is DeliveryState.DELIVERED

    def _carrier_news(self) -> tuple[bool, int]:
        return self._delivered is not None, self._attempts_reported

    def _news_since(self, news: tuple[bool, int]) -> Callable[[], bool]:
        """A condition: the carrier has told us something since ``news``."""
        return lambda: self._carrier_news() != news

    def _arrived(self) -> bool:
        return self._delivered is not None

    async def ask_carrier(self, kind: CarrierRequestKind, key: str) -> str:
        ack = await self.effect(
            CaseActivities.ask_carrier,
            CarrierRequest(
                case_id=self.case_id,
                key=f"{self.case_id}/{key}",
                order_id=self._order_id,
                kind=kind,
                at=workflow.now(),
            ),
            summary=f"Ask the carrier for a {kind.value}",
        )
        await self.record(f"carrier_{kind.value}", detail={"reference": ack.reference})
        return ack.reference

    async def refund_fee(self, quote: RushQuote) -> bool | Outcome:
        """Shipping Issues: 'Process shipping refunds for late deliveries' - the rush fee, once,
        by the shared refund mechanism; whether a fee was refunded (or the case's ending)."""
        if self._charge is None or self._fee_refunded:
            return self._fee_refunded
        receipt = await self.refund_money(quote.fee, status=CaseStatus.LATE)
        if isinstance(receipt, Outcome):
            return receipt
        self._fee_refunded = True
        await self.record(
            "rush_fee_refunded",
            detail={"reference": receipt.reference, "amount": f"{receipt.amount:.2f}"},
        )
        return True

    async def redeliver_missed(self) -> None:
        """Shipping Issues: 'Arrange redelivery for missed deliveries', once per attempt."""
        attempts = max(self._tracking.attempts, self._attempts_reported)
        while self._redeliveries < attempts:
            self._redeliveries += 1
            await self.ask_carrier(
                CarrierRequestKind.REDELIVERY, f"redelivery-{self._redeliveries}"
            )
            await self.notify(
                "rush_redelivery", Recipient.CUSTOMER, event="customer_told_redelivery"
            )

    async def escalate_late(self, quote: RushQuote) -> None:
        """Supervisor Escalation: still not delivered LATE_ESCALATE_AFTER past the promise."""
        directory = await self.call(
            CaseActivities.find_approvers,
            ApproverLookup(case_id=self.case_id, at=workflow.now()),
            summary="Find the supervisors",
        )
        self._escalated = True
        await self.notify(
            "rush_late_escalation",
            Recipient.STAFF,
            staff_ids=tuple(m.id for m in directory.staff if m.role == "supervisor"),
            step="Late: escalated to a supervisor",
            event="late_delivery_escalated",
            context={"promised": self._day(quote)},
        )

    async def lost(self) -> Outcome:
        """The carrier lost it: a freight claim case takes it over (refunding what the order
        can still refund, pursuing the carrier), linked to this case; the CS manager is told."""
        opened = await workflow.execute_activity_method(
            CaseActivities.open_freight_claim,
            ClaimHandOff(
                case_id=self.case_id,
                order_id=self._order_id,
                customer_id=self._customer_id,
                tracking_number=self._tracking.tracking_number,
            ),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DEFAULT_RETRY,
            summary="Open the freight claim",
            priority=self.activity_priority,
        )
        self._freight_claim = opened.case_id
        await self.notify(
            "rush_lost",
            Recipient.CS_MANAGER,
            event="freight_claim_opened" if opened.case_id else "freight_claim_needed",
            detail={"freight_claim": opened.case_id} if opened.case_id else None,
            context={
                "tracking_number": self._tracking.tracking_number or "(none)",
                "claim": (
                    f"Freight claim case {opened.case_id} was opened for {opened.amount:.2f}: it"
                    " refunds the customer and pursues the carrier."
                    if opened.case_id and opened.amount is not None
                    else "Nothing is left to refund on the order, so no freight claim case was"
                    " opened: please settle it with the customer and the carrier."
                ),
            },
        )
        if opened.case_id is None:
            return await self.finish(
                CaseStatus.NEEDS_ATTENTION,
                reason="the carrier reports the parcel lost; nothing is left to claim on the "
                "order, a person must settle it",
                template="rush_lost_customer",
            )
        return await self.finish(
            CaseStatus.CLOSED,
            reason=f"the carrier reports the parcel lost; freight claim {opened.case_id} "
            "took it over",
            template="rush_lost_customer",
        )

    # ---- what the carrier tells the case ----------------------------------------------------

    @workflow.signal(name="delivered")
    async def delivered_signal(self, payload: dict[str, Any]) -> None:
        """The carrier delivered: ends the wait for the promised day (or the late checks)."""
        report = await self.parse_signal("delivered", CarrierReport, payload)
        if report is None or self._delivered is not None:
            return
        self._delivered = report
        await self.record(
            "delivered",
            actor=report.reported_by,
            detail={
                "tracking_number": report.tracking_number or "",
                **relayed(report.on_behalf_of),
            },
        )

    @workflow.signal(name="delivery_attempted")
    async def delivery_attempted(self, payload: dict[str, Any]) -> None:
        """The carrier tried and could not deliver: a redelivery is arranged."""
        report = await self.parse_signal("delivery_attempted", CarrierReport, payload)
        if report is None:
            return
        self._attempts_reported = max(self._attempts_reported, self._tracking.attempts) + 1
        await self.record(
            "delivery_attempted",
            actor=report.reported_by,
            detail={"note": report.note, **relayed(report.on_behalf_of)},
        )

    # ---- shown to callers and customers -------------------------------------------------------

    def _show_promise(self, quote: RushQuote) -> None:
        """The PromisedBy search attribute: ops list the deliveries due, or overdue."""
        due = policy.delivery_due(self.rules, quote.promised_on)
        workflow.upsert_search_attributes([visibility.PROMISED_BY.value_set(due)])

    def _day(self, quote: RushQuote) -> str:
        day = quote.promised_on
        return f"{day:%A %B} {day.day}"

    def _instant(self, instant: datetime) -> str:
        local = self.rules.calendar.local(instant)
        return f"{local:%A %B} {local.day}, {local:%H:%M %Z}"
