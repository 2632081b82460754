"""Typed messages of the Returns Processing procedure (workflows/returns.py): the request,
the warehouse's events, the RA, and the eligibility the policy decides.

Pure pydantic, like ``workflows.models``: history models ignore unknown fields, the entry
points validate strictly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator

from workflows.models import (
    Audited,
    CaseState,
    Identifier,
    Model,
    Money,
    Note,
    PositiveMoney,
    Reason,
)

# The database mints these (activities.returns); the pattern only guards the shape.
RaNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^RA-\d{4}-\d{6,}$")
]


class ReturnItem(Model):
    sku: Identifier
    quantity: int = Field(gt=0, le=10_000)


class ReturnRequest(Model):
    """A request to send items of a delivered order back for a refund."""

    request_id: Identifier
    order_id: Identifier
    customer_id: Identifier
    items: tuple[ReturnItem, ...] = Field(min_length=1, max_length=100)
    reason: Reason
    requested_by: Identifier
    # The case this return came from (a cancellation of a shipped order), when one did. Left
    # out of dumps when unset, so that requests stored before it keep their fingerprint.
    linked_case_id: Identifier | None = Field(default=None, exclude_if=lambda value: value is None)

    @field_validator("items")
    @classmethod
    def _one_line_per_sku(cls, items: tuple[ReturnItem, ...]) -> tuple[ReturnItem, ...]:
        skus = [item.sku for item in items]
        if len(set(skus)) != len(skus):
            raise ValueError("list each sku once, with its total quantity")
        return items


class PackageReceived(Model):
    """The warehouse has the package that carries ``ra_number``."""

    event_id: Identifier
    ra_number: RaNumber
    received_by: Identifier = "warehouse"  # the authenticated caller (see StoreCreditChoice)
    note: Note = ""
    on_behalf_of: Identifier | None = None


class InspectionResult(Model):
    """The warehouse's verdict on the returned items.

    ``refund_amount`` defaults to the items' price; ``request_exception`` asks a manager to
    refund a failed inspection anyway (a policy exception).
    """

    event_id: Identifier
    passed: bool
    notes: Note = ""
    refund_amount: PositiveMoney | None = None
    inspected_by: Identifier = "warehouse"  # the authenticated caller (see StoreCreditChoice)
    request_exception: bool = False
    on_behalf_of: Identifier | None = None


class RaStatus(StrEnum):
    ISSUED = "issued"
    RECEIVED = "received"
    EXPIRED = "expired"


class RaState(Model):
    """A return authorization as the case and its callers see it."""

    ra_number: str
    status: RaStatus
    issued_at: datetime
    expires_at: datetime
    received_at: datetime | None = None


class ReturnState(CaseState):
    """A return case: its items and, once issued, its return authorization (RA)."""

    items: tuple[ReturnItem, ...] = ()
    ra_number: str | None = None
    ra_status: RaStatus | None = None
    ra_expires_at: datetime | None = None
    ra_received_at: datetime | None = None
    linked_case_id: str | None = None  # the cancellation it came from, if any

    def refusal_once_closed(self, message: BaseModel) -> tuple[str, str] | None:
        if isinstance(message, PackageReceived) and self.ra_status is RaStatus.EXPIRED:
            expired = f"{self.ra_expires_at:%Y-%m-%d}" if self.ra_expires_at else "its expiry"
            return (
                "RaExpired",
                f"{self.ra_number} expired on {expired} and can no longer be received",
            )
        return None


class ReturnVerdict(StrEnum):
    ELIGIBLE = "eligible"
    OUTSIDE_WINDOW = "outside_window"  # a policy exception: a manager may allow it
    INELIGIBLE = "ineligible"


class ReturnCheck(Model):
    case_id: str
    order_id: str
    customer_id: str
    items: tuple[ReturnItem, ...]
    at: datetime
    window: timedelta


class ReturnEligibility(Model):
    verdict: ReturnVerdict
    reason: str = ""
    value: Money = Decimal("0")


class OrderedLine(Model):
    sku: str
    quantity: int
    unit_price: Money


class ReturnableOrder(Model):
    """An order as the return rules need it: ``returned`` counts items under other live RAs."""

    order_id: str
    customer_id: str
    status: str
    delivered_at: datetime | None
    lines: tuple[OrderedLine, ...]
    returned: dict[str, int] = {}


class RaIssue(Audited):
    case_id: str
    order_id: str
    customer_id: str
    items: tuple[ReturnItem, ...]
    issued_at: datetime
    expires_at: datetime


class RaIssued(Model):
    """The case's RA, or why none could be issued (its items were returned meanwhile)."""

    ra: RaState | None = None
    refusal: str = ""


class RaChange(Audited):
    case_id: str
    at: datetime
