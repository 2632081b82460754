"""Typed messages of the Billing Disputes procedure (workflows/billing_dispute.py).

Pure pydantic, like ``workflows.models``: history models ignore unknown fields, the entry
points validate strictly. No contact details: the customer is an id; the invoice holds skus,
amounts and payment references only.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints, model_validator

from workflows.models import (
    Audited,
    CaseState,
    Identifier,
    Model,
    Money,
    PositiveMoney,
    RefundMethod,
    RefundReceipt,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class BillingDisputeRequest(Model):
    """A customer disputes what an order cost them (``disputed_amount``, when they name one)."""

    request_id: Identifier
    order_id: Identifier
    customer_id: Identifier
    description: Text  # what the customer disputes, in their words
    disputed_amount: PositiveMoney | None = None
    requested_by: Identifier


# ---- messages a running dispute accepts ----------------------------------------------------


class DisputeOutcome(StrEnum):
    REFUND = "refund"  # paid back to the original payment
    CREDIT = "credit"  # paid as store credit
    NO_CHANGE = "no_change"  # the charges stand, explained

    @property
    def moves_money(self) -> bool:
        return self is not DisputeOutcome.NO_CHANGE


class DisputeResolution(Model):
    """How the dispute is settled: by an agent (``dispute_resolved``) or by Accounting
    (``accounting_answer``). A refund or credit names its amount; no change names none."""

    event_id: Identifier
    outcome: DisputeOutcome
    amount: PositiveMoney | None = None
    explanation: Text
    resolved_by: Identifier = "agent"  # the authenticated caller, set by the entry point

    @model_validator(mode="after")
    def _amount_with_money_only(self) -> DisputeResolution:
        if self.outcome.moves_money and self.amount is None:
            raise ValueError(f"a {self.outcome.value} needs an amount")
        if not self.outcome.moves_money and self.amount is not None:
            raise ValueError("no_change takes no amount")
        return self

    def unproven(self) -> tuple[str, str] | None:
        """Why this may not come by signal: a signal names no proven sender (anyone reaching
        Temporal can send one), so it may settle a dispute with no change, never move money."""
        if self.outcome.moves_money:
            return (
                "Unproven",
                f"a {self.outcome.value} moves money: send it through the API or the CLI, "
                "which prove who sends it",
            )
        return None

    def audit_detail(self) -> dict[str, str]:
        detail = {"outcome": self.outcome.value, "explanation": self.explanation}
        if self.amount is not None:
            detail["amount"] = f"{self.amount:.2f}"
        return detail

    def note(self, disputed: str, receipt: RefundReceipt | None) -> str:
        """The order's note: what was disputed, how it was settled, by whom and why."""
        how = self.outcome.value.replace("_", " ")
        paid = f" {receipt.amount:.2f} ({receipt.reference})" if receipt else ""
        return (
            f"Billing dispute: {disputed}\nResolution: {how}{paid} by {self.resolved_by}\n"
            f"Explanation: {self.explanation}"
        )


class DisputeEscalation(Model):
    """An agent sends the dispute to Accounting (Department Transfers: ext. 203)."""

    event_id: Identifier
    reason: Text
    escalated_by: Identifier = "agent"  # the authenticated caller, set by the entry point


# ---- activity inputs and results ----------------------------------------------------------


class BillingReview(Model):
    case_id: str
    order_id: str
    customer_id: str


class InvoiceLine(Model):
    sku: str
    description: str
    quantity: int
    unit_price: Money
    line_total: Money


class InvoiceCharge(Model):
    """A charge beyond the order's price (an OrderCharge row: a rush fee, an order change)."""

    label: str
    reference: str
    amount: Money
    charged_at: datetime


class InvoiceRefund(Model):
    """Money paid back on the order (a LedgerEntry row)."""

    method: RefundMethod
    reference: str
    amount: Money
    issued_at: datetime


class InvoiceBreakdown(Model):
    """The order's invoice as the billing review reads it; ``refusal`` when there is no
    invoice to review (the order is unknown or not the customer's).

    ``total`` is what the order cost in all (its price plus the charges beyond it, which
    raise it); ``refunded`` what was paid back; ``refundable`` what can still be paid back
    (less amounts held for payments in flight)."""

    refusal: str = ""
    order_id: str = ""
    lines: tuple[InvoiceLine, ...] = ()
    charges: tuple[InvoiceCharge, ...] = ()
    refunds: tuple[InvoiceRefund, ...] = ()
    total: Money = Decimal("0")
    refunded: Money = Decimal("0")
    refundable: Money = Decimal("0")

    @property
    def subtotal(self) -> Decimal:
        return sum((line.line_total for line in self.lines), Decimal("0"))

    @property
    def charges_total(self) -> Decimal:
        return sum((charge.amount for charge in self.charges), Decimal("0"))

    @property
    def adjustments(self) -> Decimal:
        """What the total holds beyond its lines and charges (a discount is negative)."""
        return self.total - self.subtotal - self.charges_total

    @property
    def net_paid(self) -> Decimal:
        return self.total - self.refunded

    def table(self, currency: str) -> str:
        """The breakdown as a plain-text table (the email's body), every amount exact."""
        width = 72

        def row(label: str, amount: Decimal) -> str:
            return f"{label:<{width - 14}}{amount:>14,.2f}"

        out = [f"{'Item':<30}{'Qty':>6}{'Unit price':>16}{'Line total':>20}"]
        out.append("-" * width)
        for line in self.lines:
            out.append(
                f"{line.sku:<30}{line.quantity:>6}{line.unit_price:>16,.2f}"
                f"{line.line_total:>20,.2f}"
            )
        out.append("-" * width)
        out.append(row("Items subtotal", self.subtotal))
        for charge in self.charges:
            when = f"{charge.charged_at:%Y-%m-%d}"
            out.append(row(f"{charge.label} ({charge.reference}, {when})", charge.amount))
        if self.adjustments:
            out.append(row("Other adjustments", self.adjustments))
        out.append(row(f"Total charged ({currency})", self.total))
        for refund in self.refunds:
            method = refund.method.value.replace("_", " ")
            when = f"{refund.issued_at:%Y-%m-%d}"
            out.append(row(f"Refund to {method} ({refund.reference}, {when})", -refund.amount))
        out.append(row("Refunded so far", self.refunded))
        out.append(row(f"Net paid ({currency})", self.net_paid))
        return "\n".join(out)


class DisputeNote(Audited):
    """The resolution, written on the order's notes once per case (kind dispute_resolution)."""

    case_id: str
    order_id: str
    text: str
    at: datetime


# ---- what a caller sees --------------------------------------------------------------------


class BillingDisputeState(CaseState):
    """A billing dispute: what is disputed, the invoice reviewed, who settled it and how."""

    description: str = ""
    disputed_amount: Money | None = None
    invoice_total: Money | None = None
    refunded_before: Money | None = None
    refundable: Money | None = None
    escalated: bool = False
    escalation_reason: str | None = None
    accounting_due_at: datetime | None = None
    accounting_reminded: bool = False
    accounting_escalated: bool = False
    resolution: DisputeOutcome | None = None
    resolution_amount: Money | None = None
    resolved_by: str | None = None
    explanation: str | None = None
