"""The effects only order changes have: the status check, the quote, the charge, the change.

A mixin of ``CaseActivities``, so that cases call it by reference like every activity. Each
method is idempotent: the charge by its key (gateway and ``ChargeLedger``), the change by
its case (``OrderSystem.apply_change``: one ``order_changes`` row per case).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import audit
from activities.orders import ChangeRefused, OrderInfo, OrderLineInfo, OrderSystem
from activities.payments import ChargeLedger, PaymentDeclined, PaymentGateway, PaymentUnavailable
from infra.db import Database
from workflows.models import AuditEntry
from workflows.order_change_models import (
    Applied,
    ChangeApplication,
    ChangeCheck,
    ChangeEligibility,
    ChangeKind,
    ChangeQuote,
    OrderChange,
    QuoteAsk,
)
from workflows.rush_models import ChargeReceipt, FeeCharge

# Order Modifications: 'Verify modification is possible based on order status'. Only an
# order still being prepared can change; these say why the others cannot, to the customer.
NOT_CHANGEABLE = {
    "shipped": "has already shipped",
    "delivered": "was already delivered",
    "cancelled": "was cancelled",
}

log = structlog.get_logger(__name__)


def not_changeable(order_id: str, status: str) -> str:
    why = NOT_CHANGEABLE.get(status, f"is {status}")
    return f"order {order_id} {why} and can no longer be changed"


class OrderChangeActivities:
    db: Database
    orders: OrderSystem
    payments: PaymentGateway
    charges: ChargeLedger

    @activity.defn(name="check_order_change")
    def check_order_change(self, check: ChangeCheck) -> ChangeEligibility:
        """Order Modifications: 'Verify modification is possible based on order status'."""
        order = self.orders.get_order(check.order_id)
        if order is None:
            return ChangeEligibility(refusal=f"order {check.order_id} does not exist")
        if order.customer_id != check.customer_id:
            return ChangeEligibility(refusal=f"order {check.order_id} is not this customer's")
        customer = self.orders.get_customer(check.customer_id)
        commercial = bool(customer and customer.commercial)
        if order.status != "processing":
            return ChangeEligibility(
                refusal=not_changeable(order.id, order.status),
                order_status=order.status,
                commercial=commercial,
            )
        return ChangeEligibility(order_status=order.status, commercial=commercial)

    @activity.defn(name="quote_order_change")
    def quote_order_change(self, ask: QuoteAsk) -> ChangeQuote:
        """Order Modifications: 'Explain any additional costs for changes' - the changed
        lines priced as ordered and after the change; the difference, less any adjustment."""
        order = self.orders.get_order(ask.order_id)
        if order is None:
            return ChangeQuote(refusal=f"order {ask.order_id} does not exist")
        adjustment = ask.price_adjustment or Decimal("0")
        if ask.kind is ChangeKind.ADDRESS:
            change = OrderChange(kind=ask.kind, difference=-adjustment)
            return ChangeQuote(change=change, adjustment=adjustment)
        line = next((line for line in order.lines if line.sku == ask.sku), None)
        if line is None:
            return ChangeQuote(refusal=f"order {order.id} has no line of {ask.sku}")
        if ask.kind is ChangeKind.QUANTITY:
            return self._quantity_quote(order, line, ask, adjustment)
        return self._item_quote(order, line, ask, adjustment)

    def _quantity_quote(
        self, order: OrderInfo, line: OrderLineInfo, ask: QuoteAsk, adjustment: Decimal
    ) -> ChangeQuote:
        quantity = ask.quantity or 0
        if quantity == line.quantity:
            return ChangeQuote(refusal=f"order {order.id} already has {quantity} of {line.sku}")
        if quantity == 0 and len(order.lines) == 1:
            return ChangeQuote(
                refusal=f"{line.sku} is the only item of order {order.id}: that is a "
                "cancellation, not a change"
            )
        more = quantity - line.quantity
        if more > 0 and (short := self._short(line.sku, more)):
            return ChangeQuote(refusal=short)
        # The line keeps the price it was ordered at: the customer pays for added units what
        # the others cost, and removed units come back at what they were paid.
        old, new = line.unit_price * line.quantity, line.unit_price * quantity
        change = OrderChange(
            kind=ChangeKind.QUANTITY,
            sku=line.sku,
            from_quantity=line.quantity,
            quantity=quantity,
            difference=new - old - adjustment,
        )
        return ChangeQuote(change=change, old_value=old, new_value=new, adjustment=adjustment)

    def _item_quote(
        self, order: OrderInfo, line: OrderLineInfo, ask: QuoteAsk, adjustment: Decimal
    ) -> ChangeQuote:
        new_sku = ask.new_sku or ""
        if any(other.sku == new_sku for other in order.lines):
            return ChangeQuote(
                refusal=f"order {order.id} already has {new_sku}: change that line's quantity"
            )
        price = self.orders.catalog_prices([new_sku])[new_sku]
        if price is None:
            return ChangeQuote(refusal=f"{new_sku} is not in the catalog")
        if short := self._short(new_sku, line.quantity):
            return ChangeQuote(refusal=short)
        # The new item at today's catalog price; the old one comes off at what it cost.
        old, new = line.unit_price * line.quantity, price * line.quantity
        change = OrderChange(
            kind=ChangeKind.ITEM,
            sku=line.sku,
            from_quantity=line.quantity,
            quantity=line.quantity,
            new_sku=new_sku,
            new_unit_price=price,
            difference=new - old - adjustment,
        )
        return ChangeQuote(change=change, old_value=old, new_value=new, adjustment=adjustment)

    def _short(self, sku: str, wanted: int) -> str:
        """Why ``wanted`` more units of ``sku`` cannot be had, or ''."""
        on_hand = self.orders.get_stock([sku])[sku].on_hand
        return "" if on_hand >= wanted else f"only {on_hand} of {sku} in stock ({wanted} needed)"

    @activity.defn(name="charge_order_change")
    def charge_order_change(self, charge: FeeCharge) -> ChargeReceipt:
        """Charge the change's cost once, before it is applied, and only while the order can
        still change: a retry finds the ledger's row; a shipped order is never charged."""
        earlier = self.charges.find(charge.idempotency_key)
        if earlier is not None:
            self._write_change_audit(charge.audit)
            return earlier
        order = self.orders.get_order(charge.order_id)
        if order is None or order.status != "processing":
            self._write_change_audit(charge.audit)
            status = order.status if order else "unknown"
            raise ApplicationError(
                not_changeable(charge.order_id, status), type="NotChangeable", non_retryable=True
            )
        try:
            reference = self.payments.charge(charge)
        except PaymentDeclined as err:
            self._write_change_audit(charge.audit)
            raise ApplicationError(str(err), type="PaymentDeclined", non_retryable=True) from err
        except PaymentUnavailable as err:
            raise ApplicationError(str(err), type="PaymentUnavailable") from err
        receipt = self.charges.record(charge, reference)
        log.info("order_change_charged", reference=receipt.reference)
        return receipt

    @activity.defn(name="apply_order_change")
    def apply_order_change(self, application: ChangeApplication) -> Applied:
        """Order Modifications: 'Process approved modifications immediately' and 'Document
        modification reason in order notes': once per case, only while still processing."""
        try:
            first_time = self.orders.apply_change(
                application.case_id, application.order_id, application.change, application.at
            )
        except ChangeRefused as err:
            self._write_change_audit(application.audit)
            log.info("order_change_refused", kind=application.change.kind.value)
            return Applied(refusal=str(err))
        except LookupError as err:
            raise ApplicationError(str(err), type="InvalidRequest", non_retryable=True) from err
        self._write_change_audit(application.audit)
        log.info("order_change_applied", kind=application.change.kind.value, first=first_time)
        return Applied(first_time=first_time)

    def _write_change_audit(self, lines: Sequence[AuditEntry]) -> None:
        if lines:
            with self.db.transaction() as session:
                audit.write(session, lines)
