"""Typed messages of the Order Modifications procedure (workflows/order_change.py).

Pure pydantic, like ``workflows.models``: history models ignore unknown fields, the entry
points validate strictly. The new shipping address is the one piece of contact data a case
carries (it is what the customer asks for): it travels in the request and the apply
instruction only, never in logs, audit lines, search attributes or emails.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from workflows.models import (
    Audited,
    CaseState,
    CaseStatus,
    Identifier,
    Model,
    Money,
    Note,
    PositiveMoney,
    Reason,
)

ShippingAddress = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)
]
# Ten thousand units of one sku is no order change, it is a new order.
Quantity = Annotated[int, Field(ge=0, le=9999)]
# What the case's opening row keeps instead of the address (the order row has the real one).
ADDRESS_WITHHELD = "(withheld)"


class ChangeKind(StrEnum):
    ADDRESS = "address"  # ship to another address
    QUANTITY = "quantity"  # change how many of one line (0 removes the line)
    ITEM = "item"  # swap one line's item for another, same quantity


class OrderChangeRequest(Model):
    """A customer asks to change an order that has not shipped yet."""

    request_id: Identifier
    order_id: Identifier
    customer_id: Identifier
    kind: ChangeKind
    address: ShippingAddress | None = Field(
        default=None, description="the new shipping address (kind address)"
    )
    sku: Identifier | None = Field(default=None, description="the line changed (quantity, item)")
    quantity: Quantity | None = Field(
        default=None, description="the line's new quantity, 0 removes it (kind quantity)"
    )
    new_sku: Identifier | None = Field(
        default=None, description="the item the line becomes (kind item)"
    )
    price_adjustment: PositiveMoney | None = Field(
        default=None, description="a discount on the change: commercial accounts only"
    )
    reason: Reason
    requested_by: Identifier

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> OrderChangeRequest:
        """Each kind names exactly its own fields: a 422 at the entry points otherwise."""
        wanted = {
            ChangeKind.ADDRESS: {"address"},
            ChangeKind.QUANTITY: {"sku", "quantity"},
            ChangeKind.ITEM: {"sku", "new_sku"},
        }[self.kind]
        given = {
            name
            for name in ("address", "sku", "quantity", "new_sku")
            if getattr(self, name) is not None
        }
        named = f"{'a' if self.kind is ChangeKind.QUANTITY else 'an'} {self.kind.value} change"
        if missing := sorted(wanted - given):
            raise ValueError(f"{named} needs {', '.join(missing)}")
        if extra := sorted(given - wanted):
            raise ValueError(f"{named} takes no {', '.join(extra)}")
        if self.kind is ChangeKind.ITEM and self.new_sku == self.sku:
            raise ValueError("new_sku is the item the line already has")
        return self

    def withheld(self) -> OrderChangeRequest:
        """The request as the case row keeps it: without the address."""
        if self.address is None:
            return self
        return self.model_copy(update={"address": ADDRESS_WITHHELD})


# ---- messages a running order change accepts -----------------------------------------------


class ChangeAnswer(Model):
    """The customer's answer to the quote, relayed by an agent or the shop backend."""

    event_id: Identifier
    answered_by: Identifier = "customer"  # the authenticated caller (see StoreCreditChoice)
    on_behalf_of: Identifier | None = None
    note: Note = ""


# ---- activity inputs and results ----------------------------------------------------------


class ChangeCheck(Model):
    case_id: str
    order_id: str
    customer_id: str


class ChangeEligibility(Model):
    """Whether the order may still change; ``refusal`` says why not, for the customer."""

    refusal: str = ""
    order_status: str = ""
    commercial: bool = False


class QuoteAsk(Model):
    """Price the change asked for against the order's lines and the catalog."""

    case_id: str
    order_id: str
    kind: ChangeKind
    sku: str | None = None
    quantity: int | None = None
    new_sku: str | None = None
    price_adjustment: Decimal | None = None


class OrderChange(Model):
    """What changes, exactly as quoted; the order system applies it as such or not at all.

    ``from_quantity`` is the line's quantity the quote was priced on: a line changed since
    (another case) refuses the change instead of applying it to a different order.
    """

    kind: ChangeKind
    sku: str | None = None
    from_quantity: int | None = None
    quantity: int | None = None
    new_sku: str | None = None
    new_unit_price: Money | None = None  # the catalog price of ``new_sku``
    address: str | None = None  # set only in the apply instruction, never in a quote
    reason: str = ""
    difference: Decimal = Decimal("0")  # what the customer pays (negative: gets back)

    def described(self) -> str:
        """What changes, in words for the customer and the audit trail (no address)."""
        if self.kind is ChangeKind.ADDRESS:
            return "the shipping address"
        if self.kind is ChangeKind.ITEM:
            return (
                f"{self.sku} x {self.from_quantity} becomes {self.new_sku} x {self.from_quantity}"
            )
        if self.quantity == 0:
            return f"{self.sku} removed (was {self.from_quantity})"
        return f"{self.sku}: {self.from_quantity} becomes {self.quantity}"


class ChangeQuote(Model):
    """The priced change, or why it cannot be made (``refusal``)."""

    refusal: str = ""
    change: OrderChange | None = None
    old_value: Money = Decimal("0")  # the changed lines as ordered
    new_value: Money = Decimal("0")  # the same lines after the change
    adjustment: Money = Decimal("0")


class ChangeApplication(Audited):
    """Apply the change to the order once (the case id is the key), with its reason noted."""

    case_id: str
    order_id: str
    change: OrderChange
    at: datetime


class Applied(Model):
    """``refusal`` when the order left ``processing`` (or its line moved) before the change."""

    refusal: str = ""
    first_time: bool = False


# ---- what a caller sees --------------------------------------------------------------------


class OrderChangeState(CaseState):
    """An order change: what changes, the quote, the customer's answer, the money."""

    kind: ChangeKind | None = None
    change: str | None = None  # described, without the address
    difference: Decimal | None = None
    price_adjustment: Money | None = None
    commercial: bool = False
    accept_by: datetime | None = None
    answer: str | None = None  # accepted | declined
    applied: bool = False
    charge_reference: str | None = None
    refund_reference: str | None = None

    def refusal_once_closed(self, message: BaseModel) -> tuple[str, str] | None:
        expired = self.status is CaseStatus.DECLINED and self.answer is None
        if isinstance(message, ChangeAnswer) and expired and self.accept_by is not None:
            return (
                "QuoteExpired",
                f"the change quote expired at {self.accept_by:%Y-%m-%d %H:%M} UTC; "
                "the order was not changed",
            )
        return None
