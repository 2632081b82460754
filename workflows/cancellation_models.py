"""Typed messages of the Order Cancellations procedure (workflows/cancellation.py).

Pure pydantic, like ``workflows.models``: history models ignore unknown fields, the entry
points validate strictly. The reason is checked against CANCEL_REASONS by the registry's
``check`` hook at the entry points (a 422) and again by the case itself (the rules it opened
with), so a typed client that skips the hook still cannot cancel for an unknown reason.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, StringConstraints

from workflows.models import Audited, CaseState, CaseStatus, Identifier, Model, Money, Note
from workflows.return_models import ReturnItem

# One of the CANCEL_REASONS (a code such as ``ordered_by_mistake``); the list is a setting.
ReasonCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class CancellationRequest(Model):
    """A customer asks to cancel an order, for one of the listed reasons (plus free text)."""

    request_id: Identifier
    order_id: Identifier
    customer_id: Identifier
    reason: ReasonCode
    reason_text: Note = ""
    requested_by: Identifier


# ---- messages a running cancellation accepts --------------------------------------------


class ReturnAnswer(Model):
    """The customer's answer to the return offered for an order that could not be cancelled,
    relayed by an agent or the shop backend."""

    event_id: Identifier
    answered_by: Identifier = "customer"  # the authenticated caller (see StoreCreditChoice)
    on_behalf_of: Identifier | None = None
    note: Note = ""


# ---- activity inputs and results ----------------------------------------------------------


class CancellationCheck(Model):
    case_id: str
    order_id: str
    customer_id: str


class OrderStanding(Model):
    """The order as the cancellation sees it; ``refusal`` when it is not the customer's to
    cancel (unknown, someone else's). ``refundable``: total - refunded - reserved."""

    refusal: str = ""
    status: str = ""
    refundable: Money = Decimal("0")
    lines: tuple[ReturnItem, ...] = ()


class OrderCancellation(Audited):
    """Cancel the order for case ``case_id`` (the arbiter), noting the reason with it."""

    case_id: str
    order_id: str
    reason: str
    reason_text: str = ""
    at: datetime


class CancelVerdict(Model):
    """What the order system said: ``cancelled`` (by this case), ``already_cancelled`` (by
    someone else), or the status that stops it (``shipped``, ``delivered``)."""

    outcome: str


class LinkedReturn(Model):
    """Open the return case offered by cancellation ``case_id`` (id ``return-<case_id>``)."""

    case_id: str
    order_id: str
    customer_id: str
    items: tuple[ReturnItem, ...]
    reason: str
    requested_by: str


# ---- what a caller sees --------------------------------------------------------------------


class CancellationState(CaseState):
    """A cancellation: the reason, what the order system said, the refund, the return offer."""

    reason: str = ""
    reason_text: str = ""
    order_outcome: str | None = None  # cancelled | already_cancelled | shipped | delivered
    refund_amount: Money | None = None
    offer_until: datetime | None = None
    return_answer: str | None = None  # requested | declined
    return_case_id: str | None = None

    def refusal_once_closed(self, message: BaseModel) -> tuple[str, str] | None:
        unanswered = self.status is CaseStatus.CLOSED and self.return_answer is None
        if isinstance(message, ReturnAnswer) and unanswered and self.offer_until is not None:
            return (
                "OfferExpired",
                f"the return offer expired at {self.offer_until:%Y-%m-%d %H:%M} UTC",
            )
        return None
