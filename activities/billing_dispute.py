"""The effects only billing disputes have: the invoice breakdown and the resolution's note.

A mixin of ``CaseActivities``, so that cases call it by reference like every activity. The
review only reads (the order system's lines and totals, the charge and refund ledgers); the
note is written once per case (unique ``(case_id, kind)``) with the case's audit lines.
"""

from __future__ import annotations

import structlog
from sqlalchemy.exc import IntegrityError
from temporalio import activity

from activities import audit
from activities.orders import OrderSystem
from activities.payments import ChargeLedger, RefundLedger
from infra.db import Database, OrderNote
from workflows.billing_dispute_models import (
    BillingReview,
    DisputeNote,
    InvoiceBreakdown,
    InvoiceCharge,
    InvoiceLine,
    InvoiceRefund,
)

# How the invoice names a charge beyond the price, by the type of the case that made it.
CHARGE_LABELS = {"rush": "Rush fee", "order_change": "Order change"}
NOTE_KIND = "dispute_resolution"

log = structlog.get_logger(__name__)


class BillingDisputeActivities:
    db: Database
    orders: OrderSystem
    ledger: RefundLedger
    charges: ChargeLedger

    @activity.defn(name="review_billing")
    def review_billing(self, review: BillingReview) -> InvoiceBreakdown:
        """Billing Disputes: 'Review billing details' - lines, charges, refunds and totals."""
        order = self.orders.get_order(review.order_id)
        if order is None:
            return InvoiceBreakdown(refusal=f"order {review.order_id} does not exist")
        if order.customer_id != review.customer_id:
            return InvoiceBreakdown(refusal=f"order {review.order_id} is not this customer's")
        charges = self.charges.on_order(order.id)
        refunds = self.ledger.on_order(order.id)
        return InvoiceBreakdown(
            order_id=order.id,
            lines=tuple(
                InvoiceLine(
                    sku=line.sku,
                    description=line.description,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    line_total=line.unit_price * line.quantity,
                )
                for line in order.lines
            ),
            charges=tuple(
                InvoiceCharge(
                    label=CHARGE_LABELS.get(
                        charge.case_type, charge.case_type.replace("_", " ").capitalize()
                    ),
                    reference=charge.receipt.reference,
                    amount=charge.receipt.amount,
                    charged_at=charge.receipt.charged_at,
                )
                for charge in charges
            ),
            refunds=tuple(
                InvoiceRefund(
                    method=refund.method,
                    reference=refund.reference,
                    amount=refund.amount,
                    issued_at=refund.issued_at,
                )
                for refund in refunds
            ),
            total=order.total,
            refunded=order.refunded,
            refundable=order.refundable,
        )

    @activity.defn(name="document_dispute_resolution")
    def document_dispute_resolution(self, note: DisputeNote) -> bool:
        """Billing Disputes: 'Document dispute resolution for future reference' - the order's
        note and the case's lines in one transaction; False when written before (a retry)."""
        try:
            with self.db.transaction() as session:
                session.add(
                    OrderNote(
                        order_id=note.order_id,
                        case_id=note.case_id,
                        kind=NOTE_KIND,
                        text=note.text,
                        at=note.at,
                    )
                )
                session.flush()  # a repeat fails here, on (case_id, kind)
                audit.write(session, note.audit)
        except IntegrityError:
            # Written by an earlier attempt (or a concurrent one): the lines this attempt
            # carries are written all the same, each once by its seq.
            with self.db.transaction() as session:
                audit.write(session, note.audit)
            return False
        log.info("dispute_resolution_documented")
        return True
