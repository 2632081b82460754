"""Typed messages of the Rush Orders procedure (workflows/rush_orders.py).

Pure pydantic, like ``workflows.models``: history models ignore unknown fields, the entry
points validate strictly. No contact details: the customer is an id, the carrier a tracking
number.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel

from workflows.models import (
    Audited,
    CaseState,
    CaseStatus,
    Identifier,
    Model,
    Money,
    Note,
    PositiveMoney,
)


class RushOrderRequest(Model):
    """A customer asks for an order to be expedited (by a date, when they name one)."""

    request_id: Identifier
    order_id: Identifier
    customer_id: Identifier
    requested_delivery_date: date | None = None
    requested_by: Identifier


# ---- messages a running rush order accepts -----------------------------------------------


class FeeAnswer(Model):
    """The customer's answer to the rush fee quote, relayed by an agent or the shop backend."""

    event_id: Identifier
    answered_by: Identifier = "customer"  # the authenticated caller (see StoreCreditChoice)
    on_behalf_of: Identifier | None = None
    note: Note = ""


class CarrierReport(Model):
    """What the carrier said about the parcel (delivered, or a delivery attempted), relayed
    by the shop backend."""

    event_id: Identifier
    reported_by: Identifier = "carrier"  # the authenticated caller
    on_behalf_of: Identifier | None = None
    tracking_number: Identifier | None = None
    note: Note = ""


# ---- activity inputs and results ----------------------------------------------------------


class AvailabilityCheck(Model):
    case_id: str
    order_id: str
    customer_id: str


class UnavailableItem(Model):
    sku: str
    wanted: int
    in_stock: int
    available_on: date | None = None  # the earliest restock the order system knows


class Availability(Model):
    """Whether every line of the order can go out expedited; ``refusal`` when the order
    cannot be rushed at all (unknown, not the customer's, shipped or cancelled)."""

    refusal: str = ""
    unavailable: tuple[UnavailableItem, ...] = ()
    items: int = 0  # units on the order: the per-item fee counts them
    vip: bool = False

    @property
    def ok(self) -> bool:
        return not self.refusal and not self.unavailable


class RushQuote(Model):
    """The fee and the promise, as quoted; ``accept_by`` closes the acceptance window."""

    fee: Money
    waived: bool = False
    quoted_at: datetime
    accept_by: datetime
    ships_on: date
    promised_on: date


class FeeCharge(Audited):
    """Charge the rush fee once: ``idempotency_key`` makes a retry a lookup."""

    case_id: str
    idempotency_key: str
    order_id: str
    customer_id: str
    amount: PositiveMoney
    charged_at: datetime


class ChargeReceipt(Model):
    reference: str
    amount: Money
    charged_at: datetime


class PriorityFlag(Audited):
    """Flag the order for priority processing, promised for ``promised_on``."""

    case_id: str
    order_id: str
    promised_on: date
    at: datetime


class DeliveryState(StrEnum):
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    ATTEMPTED = "attempted"  # the carrier came and could not deliver
    LOST = "lost"


class Tracking(Model):
    """The carrier's view of the order's parcel."""

    state: DeliveryState = DeliveryState.IN_TRANSIT
    tracking_number: str | None = None
    delivered_at: datetime | None = None
    attempts: int = 0  # failed delivery attempts so far


class DeliveryQuery(Model):
    case_id: str
    order_id: str


class CarrierRequestKind(StrEnum):
    INVESTIGATION = "investigation"
    REDELIVERY = "redelivery"


class CarrierRequest(Audited):
    """Ask the carrier to investigate a late parcel or to deliver again; once per key."""

    case_id: str
    key: str
    order_id: str
    kind: CarrierRequestKind
    at: datetime


class CarrierAck(Model):
    reference: str


# ---- what a caller sees --------------------------------------------------------------------


class RushState(CaseState):
    """A rush order: the quote, the customer's answer, the charge and the delivery."""

    requested_delivery_date: date | None = None
    vip: bool = False
    fee: Money | None = None
    fee_waived: bool = False
    accept_by: datetime | None = None
    ships_on: date | None = None
    promised_on: date | None = None
    fee_answer: str | None = None  # accepted | declined
    charge_reference: str | None = None
    delivery: DeliveryState | None = None
    tracking_number: str | None = None
    fee_refunded: bool = False
    redeliveries: int = 0
    escalated: bool = False
    freight_claim_id: str | None = None  # the freight claim a lost parcel handed off to

    def refusal_once_closed(self, message: BaseModel) -> tuple[str, str] | None:
        expired = self.status is CaseStatus.DECLINED and self.fee_answer is None
        if isinstance(message, FeeAnswer) and expired and self.accept_by is not None:
            return (
                "QuoteExpired",
                f"the rush quote expired at {self.accept_by:%Y-%m-%d %H:%M} UTC; "
                "the order ships as standard",
            )
        return None
