"""The effects only rush orders have: availability, the fee, the priority flag, the carrier.

A mixin of ``CaseActivities``, so that cases call it by reference like every activity. Each
method is idempotent: the fee by its key (gateway and ledger), the flag by its case, the
carrier's requests by theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import audit
from activities.carrier import Carrier
from activities.orders import OrderSystem
from activities.payments import ChargeLedger, PaymentDeclined, PaymentGateway, PaymentUnavailable
from infra.db import Database
from workflows.models import AuditEntry
from workflows.rush_models import (
    Availability,
    AvailabilityCheck,
    CarrierAck,
    CarrierRequest,
    ChargeReceipt,
    DeliveryQuery,
    FeeCharge,
    PriorityFlag,
    Tracking,
    UnavailableItem,
)

# Orders past these cannot be expedited: they left the warehouse, or will never leave it.
NOT_RUSHABLE = {"shipped": "has already shipped", "delivered": "was already delivered"}

log = structlog.get_logger(__name__)


class RushActivities:
    db: Database
    orders: OrderSystem
    payments: PaymentGateway
    charges: ChargeLedger
    carrier: Carrier

    @activity.defn(name="check_rush_availability")
    def check_rush_availability(self, check: AvailabilityCheck) -> Availability:
        """Rush Orders: 'Verify product availability for expedited processing', every line."""
        order = self.orders.get_order(check.order_id)
        if order is None:
            return Availability(refusal=f"order {check.order_id} does not exist")
        if order.customer_id != check.customer_id:
            return Availability(refusal=f"order {check.order_id} is not this customer's")
        if order.status == "cancelled":
            return Availability(refusal=f"order {check.order_id} was cancelled")
        if order.status in NOT_RUSHABLE:
            return Availability(refusal=f"order {check.order_id} {NOT_RUSHABLE[order.status]}")
        customer = self.orders.get_customer(check.customer_id)
        stock = self.orders.get_stock([line.sku for line in order.lines])
        unavailable = tuple(
            UnavailableItem(
                sku=line.sku,
                wanted=line.quantity,
                in_stock=stock[line.sku].on_hand,
                available_on=stock[line.sku].restock_on,
            )
            for line in order.lines
            if stock[line.sku].on_hand < line.quantity
        )
        return Availability(
            unavailable=unavailable,
            items=sum(line.quantity for line in order.lines),
            vip=bool(customer and customer.vip),
        )

    @activity.defn(name="charge_rush_fee")
    def charge_rush_fee(self, charge: FeeCharge) -> ChargeReceipt:
        """Charge the fee once: the ledger's key turns a retry into a lookup, and the
        gateway is idempotent on the same key should the attempt die between the two."""
        earlier = self.charges.find(charge.idempotency_key)
        if earlier is not None:
            self._write_audit(charge.audit)
            return earlier
        try:
            reference = self.payments.charge(charge)
        except PaymentDeclined as err:
            self._write_audit(charge.audit)  # what led to the charge happened all the same
            raise ApplicationError(str(err), type="PaymentDeclined", non_retryable=True) from err
        except PaymentUnavailable as err:
            raise ApplicationError(str(err), type="PaymentUnavailable") from err
        receipt = self.charges.record(charge, reference)
        log.info("rush_fee_charged", reference=receipt.reference)
        return receipt

    @activity.defn(name="flag_priority")
    def flag_priority(self, flag: PriorityFlag) -> bool:
        """Rush Orders: 'Flag order for priority processing'; False when already flagged."""
        try:
            flagged = self.orders.flag_priority(
                flag.order_id, case_id=flag.case_id, promised_on=flag.promised_on, at=flag.at
            )
        except LookupError as err:
            raise ApplicationError(str(err), type="InvalidRequest", non_retryable=True) from err
        self._write_audit(flag.audit)
        return flagged

    @activity.defn(name="track_delivery")
    def track_delivery(self, query: DeliveryQuery) -> Tracking:
        """Shipping Issues: 'Verify delivery status and tracking' with the carrier."""
        return self.carrier.track(query.order_id)

    @activity.defn(name="ask_carrier")
    def ask_carrier(self, request: CarrierRequest) -> CarrierAck:
        """Shipping Issues: an investigation of a late parcel, or a redelivery; once per key."""
        reference = self.carrier.request(
            request.key,
            case_id=request.case_id,
            order_id=request.order_id,
            kind=request.kind,
            at=request.at,
        )
        self._write_audit(request.audit)
        log.info("carrier_asked", kind=request.kind.value, reference=reference)
        return CarrierAck(reference=reference)

    def _write_audit(self, lines: Sequence[AuditEntry]) -> None:
        if lines:
            with self.db.transaction() as session:
                audit.write(session, lines)
