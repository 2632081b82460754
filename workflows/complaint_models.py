"""Typed messages of the Quality Complaints procedure (workflows/complaints.py).

Pure pydantic, like ``workflows.models``: history models ignore unknown fields, the entry
points validate strictly. Photos are URLs the customer gave; no contact details here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from workflows.models import Audited, CaseState, Identifier, Model, Note, PositiveMoney

MAX_PHOTOS = 10


class ComplaintCategory(StrEnum):
    QUALITY = "quality"
    FOOD_SAFETY = "food_safety"
    MEDICAL = "medical"

    @property
    def is_emergency(self) -> bool:
        """Food safety and medical complaints page the emergency line out of hours."""
        return self is not ComplaintCategory.QUALITY


class Resolution(StrEnum):
    REPLACEMENT = "replacement"
    REFUND = "refund"
    NONE = "none"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL")
    return value


PhotoUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_http_url),
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class ComplaintRequest(Model):
    """A customer's quality complaint about one product (sku) from one lot."""

    request_id: Identifier
    order_id: Identifier
    customer_id: Identifier
    category: ComplaintCategory
    description: Description
    sku: Identifier
    lot: Identifier
    photos: tuple[PhotoUrl, ...] = Field(default=(), max_length=MAX_PHOTOS)
    requested_resolution: Resolution = Resolution.NONE
    amount: PositiveMoney | None = None  # the refund asked for; only with a refund
    requested_by: Identifier

    @model_validator(mode="after")
    def _amount_with_refund(self) -> ComplaintRequest:
        refund = self.requested_resolution is Resolution.REFUND
        if refund and self.amount is None:
            raise ValueError("a refund needs an amount")
        if not refund and self.amount is not None:
            raise ValueError("an amount is only for a refund")
        return self


# ---- messages a running complaint accepts ----------------------------------------------------


class QaFindings(Model):
    """Quality Assurance's (or Food Safety's) findings on the complaint."""

    event_id: Identifier
    root_cause: Note = ""
    lot_affected: bool = False
    action: Note = ""
    reported_by: Identifier = "qa"  # the authenticated caller (see StoreCreditChoice)
    on_behalf_of: Identifier | None = None


class CustomerResponse(Model):
    """The customer's answer to 'are you satisfied with the resolution?'."""

    event_id: Identifier
    satisfied: bool = False
    comment: Note = ""
    recorded_by: Identifier = "customer"  # the authenticated caller
    on_behalf_of: Identifier | None = None


class SupervisorAction(Model):
    """What the supervisor did about a customer who is not satisfied."""

    event_id: Identifier
    action: Short = "reviewed"
    note: Note = ""
    taken_by: Identifier = "supervisor"  # the authenticated caller
    on_behalf_of: Identifier | None = None


# ---- activity inputs and results ----------------------------------------------------------


class ReplacementOrder(Audited):
    """One replacement of ``sku`` for the case; the case id makes a retry a lookup."""

    case_id: str
    order_id: str
    customer_id: str
    sku: str
    at: datetime


class ReplacementPlaced(Model):
    order_id: str
    created: bool  # False when an earlier attempt had placed it


# ---- what a caller sees --------------------------------------------------------------------


class ComplaintState(CaseState):
    """A complaint: what it is about, how it was resolved, and where the follow-up stands."""

    category: ComplaintCategory | None = None
    sku: str | None = None
    lot: str | None = None
    requested_resolution: Resolution | None = None
    replacement_order_id: str | None = None
    follow_up_at: datetime | None = None
    qa_root_cause: str | None = None
    satisfied: bool | None = None


# ---- the lot watch (recalls) ---------------------------------------------------------------


class LotComplaint(Model):
    """A complaint reported to its lot's watch (the signal that starts or feeds it)."""

    lot: str
    sku: str
    case_id: str
    category: ComplaintCategory
    at: datetime
    # The opening case's rules: a new watch takes its trigger from its first complaint.
    threshold: int = 3
    window: timedelta = timedelta(days=7)


class RecallReview(Model):
    """A recall review for QA and Food Safety: the lot, its linked cases, the checklist."""

    lot: str
    sku: str
    case_ids: tuple[str, ...]
    opened_at: datetime


class LotWatchState(Model):
    lot: str
    complaints: tuple[str, ...] = ()  # the case ids, in arrival order
    review: RecallReview | None = None
