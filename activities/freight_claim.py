"""The effects only freight claims have: the claim verified against the order, replacements
shipped, the claim filed with the carrier and followed up, and a lost parcel's hand-off.

A mixin of ``CaseActivities``, so that cases call it by reference like every activity. Each
method is idempotent: replacements by ids derived from the case and the sku, the carrier's
claim by its key, the hand-off by a case id derived from the case handing off.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

import structlog
from pydantic import ValidationError
from temporalio import activity
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import audit
from activities.carrier import Carrier
from activities.complaints import replacement_id
from activities.orders import OrderInfo, OrderSystem
from infra.db import Database
from workflows import visibility
from workflows.freight_claim_models import (
    ClaimCheck,
    ClaimFiled,
    ClaimFiling,
    ClaimHandOff,
    ClaimKind,
    ClaimOpened,
    ClaimReplacement,
    ClaimResolution,
    ClaimStatus,
    ClaimStatusQuery,
    ClaimVerdict,
    FreightClaimRequest,
    ReplacementsPlaced,
)
from workflows.models import AuditEntry, CaseType

FREIGHT_CLAIM_WORKFLOW = "FreightClaimWorkflow"  # by name: activities never import workflows

log = structlog.get_logger(__name__)


def claim_replacement_id(case_id: str, sku: str) -> str:
    """A claim's replacement order for ``sku``: the complaint's scheme, per sku, so that a
    claim ships each sku once and never collides with the complaint's one per case."""
    return replacement_id(f"{case_id}/{sku}")


def hand_off_case_id(case_id: str) -> str:
    """The freight claim opened for the parcel case ``case_id`` lost: derived from it, so a
    retried hand-off finds the claim it opened. The starter's scheme (``<type>-<request>``)."""
    return f"{CaseType.FREIGHT_CLAIM.value.replace('_', '-')}-lost-{case_id}"


class FreightClaimActivities:
    db: Database
    orders: OrderSystem
    carrier: Carrier

    @activity.defn(name="verify_claim")
    def verify_claim(self, check: ClaimCheck) -> ClaimVerdict:
        """The order exists and is the customer's; a refund fits what the order can still
        refund; a replacement names skus the order has."""
        order = self.orders.get_order(check.order_id)
        if order is None:
            return ClaimVerdict(ok=False, reason=f"order {check.order_id} does not exist")
        if order.customer_id != check.customer_id:
            return ClaimVerdict(ok=False, reason=f"order {check.order_id} is not this customer's")
        if check.resolution is ClaimResolution.REFUND and check.amount > order.refundable:
            return ClaimVerdict(
                ok=False,
                reason=f"only {order.refundable:.2f} of order {order.id} is still refundable",
                refundable=order.refundable,
            )
        ordered = {line.sku for line in order.lines}
        missing = [sku for sku in check.skus if sku not in ordered]
        if missing:
            return ClaimVerdict(
                ok=False, reason=f"not on order {order.id}: {', '.join(sorted(missing))}"
            )
        return ClaimVerdict(ok=True, refundable=order.refundable)

    @activity.defn(name="place_claim_replacements")
    def place_claim_replacements(self, shipment: ClaimReplacement) -> ReplacementsPlaced:
        """Shipping Issues: 'Offer replacement shipping for damaged packages' - one free order
        per sku (the order system's ``place_replacement``); a retry finds them placed."""
        created = 0
        order_ids: list[str] = []
        for sku in shipment.skus:
            order_id = claim_replacement_id(shipment.case_id, sku)
            try:
                created += self.orders.place_replacement(
                    order_id, order_id=shipment.order_id, sku=sku, at=shipment.at
                )
            except LookupError as err:
                raise ApplicationError(str(err), type="InvalidRequest", non_retryable=True) from err
            order_ids.append(order_id)
        self._write_claim_audit(shipment.audit)
        log.info("claim_replacements_placed", created=created, skus=len(shipment.skus))
        return ReplacementsPlaced(order_ids=tuple(order_ids), created=created)

    @activity.defn(name="file_claim")
    def file_claim(self, filing: ClaimFiling) -> ClaimFiled:
        """File the freight claim with the carrier, once per key; a retry gets its reference."""
        reference = self.carrier.file_claim(
            filing.key,
            case_id=filing.case_id,
            order_id=filing.order_id,
            amount=filing.amount,
            at=filing.at,
        )
        self._write_claim_audit(filing.audit)
        log.info("freight_claim_filed", reference=reference)
        return ClaimFiled(reference=reference)

    @activity.defn(name="claim_status")
    def claim_status(self, query: ClaimStatusQuery) -> ClaimStatus:
        """Follow-up: ask the carrier where the claim stands."""
        try:
            return self.carrier.claim_status(query.key)
        except LookupError as err:
            raise ApplicationError(str(err), type="InvalidRequest", non_retryable=True) from err

    @activity.defn(name="open_freight_claim")
    async def open_freight_claim(self, hand_off: ClaimHandOff) -> ClaimOpened:
        """A parcel the carrier lost on a case: open its freight claim case (a refund of what
        the order can still refund), linked to that case; a retry finds the claim it opened."""
        client = activity.client()
        claim_id = hand_off_case_id(hand_off.case_id)
        try:
            # Looked up first: a retry after the claim already refunded the order must find
            # the claim, not conclude that nothing is left to claim.
            existing = await client.get_workflow_handle(claim_id).describe()
            return _opened(claim_id, existing.typed_search_attributes.get(visibility.AMOUNT))
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise
        order = await asyncio.to_thread(self.orders.get_order, hand_off.order_id)
        if order is None or order.refundable <= 0:
            log.info("freight_claim_not_opened", reason="nothing left to claim")
            return ClaimOpened()
        request = _lost_parcel_claim(hand_off, order, claim_id)
        try:
            await client.start_workflow(
                FREIGHT_CLAIM_WORKFLOW,
                request,
                id=claim_id,
                task_queue=activity.info().task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(visibility.CASE_TYPE, CaseType.FREIGHT_CLAIM.value),
                        SearchAttributePair(visibility.CASE_STATUS, "received"),
                        SearchAttributePair(visibility.ORDER_ID, request.order_id),
                        SearchAttributePair(visibility.CUSTOMER_ID, request.customer_id),
                        SearchAttributePair(visibility.AMOUNT, float(request.amount)),
                    ]
                ),
                static_summary=f"Freight claim (lost) for order {request.order_id}",
            )
        except WorkflowAlreadyStartedError:
            # Started by an attempt that died before answering: that claim is the one.
            return ClaimOpened(case_id=claim_id, amount=request.amount)
        log.info("freight_claim_opened", linked_case=hand_off.case_id, claim=claim_id)
        return ClaimOpened(case_id=claim_id, amount=request.amount)

    def _write_claim_audit(self, lines: Sequence[AuditEntry]) -> None:
        if lines:
            with self.db.transaction() as session:
                audit.write(session, lines)


def _lost_parcel_claim(
    hand_off: ClaimHandOff, order: OrderInfo, claim_id: str
) -> FreightClaimRequest:
    tracking = hand_off.tracking_number
    fields = {
        "request_id": claim_id.removeprefix("freight-claim-"),
        "order_id": order.id,
        "customer_id": hand_off.customer_id,
        "kind": ClaimKind.LOST,
        # What the order can still refund: its total less what was refunded (the rush fee,
        # paid back by the late path) and what other cases hold for payments in flight.
        "amount": order.refundable,
        "resolution": ClaimResolution.REFUND,
        "description": f"The carrier lost the parcel of case {hand_off.case_id}.",
        "requested_by": "system",
        "linked_case_id": hand_off.case_id,
    }
    try:
        return FreightClaimRequest.model_validate({**fields, "tracking_number": tracking})
    except ValidationError:
        # A carrier number outside our id alphabet is kept out of the claim, not fatal.
        return FreightClaimRequest.model_validate(fields)


def _opened(claim_id: str, amount: float | None) -> ClaimOpened:
    """The claim found on a retry; its amount as its Amount search attribute holds it."""
    if amount is None:
        return ClaimOpened(case_id=claim_id)
    return ClaimOpened(case_id=claim_id, amount=Decimal(str(amount)).quantize(Decimal("0.01")))
