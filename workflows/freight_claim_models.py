"""Typed messages of the freight claim procedure (workflows/freight_claim.py).

Pure pydantic, like ``workflows.models``: history models ignore unknown fields, the entry
points validate strictly. Photos are URLs the customer gave (the complaint's ``PhotoUrl``);
the carrier is a tracking number and a claim reference; no contact details here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, model_validator

from workflows.complaint_models import MAX_PHOTOS, Description, PhotoUrl
from workflows.models import (
    Audited,
    CaseState,
    Identifier,
    Model,
    Money,
    Note,
    PositiveMoney,
)


class ClaimKind(StrEnum):
    DAMAGED = "damaged"
    LOST = "lost"


class ClaimResolution(StrEnum):
    """How the customer is made whole (the customer's choice)."""

    REFUND = "refund"
    REPLACEMENT = "replacement"


class FreightClaimRequest(Model):
    """A shipment damaged or lost by the carrier: the evidence, the amount claimed and how
    the customer wants to be made whole. ``linked_case_id`` names the case that handed the
    parcel off (a rush order the carrier lost)."""

    request_id: Identifier
    order_id: Identifier
    customer_id: Identifier
    kind: ClaimKind
    amount: PositiveMoney
    photos: tuple[PhotoUrl, ...] = Field(default=(), max_length=MAX_PHOTOS)
    tracking_number: Identifier | None = None
    resolution: ClaimResolution = ClaimResolution.REFUND
    skus: tuple[Identifier, ...] = ()  # what to ship again, for a replacement
    description: Description
    requested_by: Identifier
    linked_case_id: Identifier | None = None

    @model_validator(mode="after")
    def _skus_with_replacement(self) -> FreightClaimRequest:
        replacement = self.resolution is ClaimResolution.REPLACEMENT
        if replacement and not self.skus:
            raise ValueError("a replacement needs the skus to ship again")
        if not replacement and self.skus:
            raise ValueError("skus are only for a replacement")
        if len(set(self.skus)) != len(self.skus):
            raise ValueError("each sku once")
        return self


# ---- messages a running claim accepts --------------------------------------------------------


class CarrierSettlement(Model):
    """The carrier settled the claim (relayed by the shop backend): what it paid us."""

    event_id: Identifier
    settled_amount: Money
    note: Note = ""
    reported_by: Identifier = "carrier"  # the authenticated caller (see StoreCreditChoice)
    on_behalf_of: Identifier | None = None


class AccountingClosing(Model):
    """Accounting closes a claim it took over: what the carrier paid in the end, if anything."""

    event_id: Identifier
    settled_amount: Money | None = None
    note: Note = ""
    closed_by: Identifier = "accounting"  # the authenticated caller (see StoreCreditChoice)
    on_behalf_of: Identifier | None = None


# ---- activity inputs and results ----------------------------------------------------------


class ClaimCheck(Model):
    """Verify a claim against the order: the customer's, and what it can still refund."""

    case_id: str
    order_id: str
    customer_id: str
    amount: PositiveMoney
    resolution: ClaimResolution
    skus: tuple[str, ...] = ()


class ClaimVerdict(Model):
    ok: bool
    reason: str = ""
    refundable: Money | None = None


class ClaimReplacement(Audited):
    """Ship each sku again, free: one replacement order per sku, its id derived from the
    case id and the sku, so a retry finds what it placed."""

    case_id: str
    order_id: str
    customer_id: str
    skus: tuple[str, ...]
    at: datetime


class ReplacementsPlaced(Model):
    order_ids: tuple[str, ...]  # in the order of the skus
    created: int  # how many this attempt placed (0 on a retry after success)


class ClaimFiling(Audited):
    """File the claim with the carrier once per ``key``."""

    case_id: str
    key: str
    order_id: str
    amount: PositiveMoney
    at: datetime


class ClaimFiled(Model):
    reference: str


class CarrierClaimStatus(StrEnum):
    FILED = "filed"
    SETTLED = "settled"
    DENIED = "denied"


class ClaimStatus(Model):
    """The carrier's answer on a filed claim."""

    status: CarrierClaimStatus = CarrierClaimStatus.FILED
    settled_amount: Money | None = None

    @property
    def closed(self) -> bool:
        return self.status is not CarrierClaimStatus.FILED


class ClaimStatusQuery(Model):
    case_id: str
    key: str


class ClaimHandOff(Model):
    """Open the freight claim of a parcel the carrier lost on a case (a rush order)."""

    case_id: str  # the case handing the parcel off
    order_id: str
    customer_id: str
    tracking_number: str | None = None


class ClaimOpened(Model):
    """The claim case opened (or found, on a retry); no case when nothing is left to claim."""

    case_id: str | None = None
    amount: Money | None = None


# ---- what a caller sees --------------------------------------------------------------------


class FreightClaimState(CaseState):
    """A freight claim: the evidence, how the customer was made whole, the carrier's claim."""

    kind: ClaimKind | None = None
    resolution: ClaimResolution | None = None
    skus: tuple[str, ...] = ()
    photos: tuple[str, ...] = ()
    tracking_number: str | None = None
    linked_case_id: str | None = None
    refund_reference: str | None = None
    replacement_order_ids: tuple[str, ...] = ()
    carrier_reference: str | None = None
    carrier_status: CarrierClaimStatus | None = None
    settled_amount: Money | None = None
    follow_ups: int = 0  # times the carrier was asked where the claim stands
    carrier_wait_until: datetime | None = None
    escalated_to_accounting: bool = False
