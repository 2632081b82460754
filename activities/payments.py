"""The payment gateway (card refunds, store credit and rush fee charges), the refund ledger
and the charge ledger.

A gateway must be idempotent on ``idempotency_key``, as real ones are: a repeated call
returns the first reference and moves no more money. The ledger reserves the amount on the
order before the gateway is called, and records each payment once (unique key), with the
order's refunded total and its reservation, in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any, Protocol, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Insert,
    Result,
    Select,
    Table,
    bindparam,
    insert,
    literal,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from activities import audit as audit_trail
from infra.db import (
    Case,
    Database,
    LedgerEntry,
    Order,
    OrderCharge,
    RefundReservation,
    UtcDateTime,
)
from workflows.models import AuditEntry, RefundInstruction, RefundMethod, RefundReceipt
from workflows.rush_models import ChargeReceipt, FeeCharge


class PaymentDeclined(Exception):
    """The gateway refused for good (closed card, fraud hold): retrying will not help."""


class PaymentUnavailable(Exception):
    """The gateway could not be reached or timed out: try again later."""


class PaymentGateway(Protocol):
    def refund(self, instruction: RefundInstruction) -> str:
        """Pay ``instruction.amount`` back; return the gateway's reference."""
        ...

    def charge(self, charge: FeeCharge) -> str:
        """Take ``charge.amount`` from the customer's payment account, once per
        ``charge.idempotency_key``; return the gateway's reference (the first one, on a
        repeat)."""
        ...


class LocalPaymentGateway:
    """The default gateway: refuses closed payment accounts, otherwise pays at once."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def refund(self, instruction: RefundInstruction) -> str:
        # A look, not a write: on SQLite a write transaction would queue every refund behind
        # the database's one writer for nothing.
        account = self._account(instruction.order_id)
        if account is None:
            raise PaymentDeclined(f"order {instruction.order_id} is unknown to the gateway")
        if instruction.method is RefundMethod.ORIGINAL_PAYMENT and account != "active":
            raise PaymentDeclined("the original payment account is closed")
        prefix = "SC" if instruction.method is RefundMethod.STORE_CREDIT else "RF"
        return _reference(prefix, instruction.idempotency_key)

    def charge(self, charge: FeeCharge) -> str:
        account = self._account(charge.order_id)
        if account is None:
            raise PaymentDeclined(f"order {charge.order_id} is unknown to the gateway")
        if account != "active":
            raise PaymentDeclined("the payment account is closed")
        # Derived from the key alone: a repeated charge gets the first reference.
        return _reference("CH", charge.idempotency_key)

    def _account(self, order_id: str) -> str | None:
        """The state of the order's payment account; None for an unknown order."""
        with self._db.read() as session:
            return session.scalar(_payment_account(), {"paying_order": order_id})


@cache
def _payment_account() -> Select[str]:
    return select(Order.payment_account).where(Order.id == bindparam("paying_order"))


def _reference(prefix: str, key: str) -> str:
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:10].upper()}"


class Held(StrEnum):
    """What ``RefundLedger.hold`` found or made for a payment's key."""

    HELD = "held"  # the amount is reserved on the order: the gateway may be called
    PAID = "paid"  # the payment was recorded before: look its receipt up
    RELEASED = "released"  # given up for good: this key will never pay
    REFUSED = "refused"  # the order cannot cover it; nothing was reserved


class _NoRoom(Exception):
    """The order cannot cover a hold: raised to roll its transaction back."""


class RefundLedger:
    """The one way money is paid back: reserve on the order, pay, record; or release.

    Every procedure that refunds goes through ``hold`` before its gateway call and ``record``
    after it, keyed by the payment's idempotency key, so a retry finds its own reservation.
    The refundable check and the reservation are one conditional UPDATE (the row is locked
    by it on PostgreSQL, and SQLite transactions here start with BEGIN IMMEDIATE): two
    payments on one order can never both take the last of it. Amounts move between
    ``reserved`` and ``refunded`` in SQL, never read into Python and written back.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def find(self, idempotency_key: str) -> RefundReceipt | None:
        with self._db.read() as session:
            entry = session.scalar(
                select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key)
            )
            return None if entry is None else _receipt(entry)

    def on_order(self, order_id: str) -> tuple[RefundReceipt, ...]:
        """Every payment made back on the order, oldest first (a billing review lists them)."""
        with self._db.read() as session:
            entries = session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.order_id == order_id)
                .order_by(LedgerEntry.issued_at, LedgerEntry.id)
            )
            return tuple(_receipt(entry) for entry in entries)

    def hold(
        self,
        key: str,
        *,
        case_id: str,
        order_id: str,
        amount: Decimal,
        audit: Sequence[AuditEntry] = (),
    ) -> Held:
        """Reserve ``amount`` on the order for ``key``, or set an existing hold to it.

        ``audit`` lines are written in the same transaction (and rolled back with a refusal).
        """
        try:
            with self._db.transaction() as session:
                row = session.get(RefundReservation, key, with_for_update=True)
                audit_trail.write(session, audit)
                if row is not None and row.status != Held.HELD.value:
                    return Held(row.status)
                now = datetime.now(UTC)
                already = Decimal("0")
                if row is None:
                    # The key is claimed first: a concurrent attempt with the same key waits
                    # on it, then fails on the unique key and finds this hold, instead of
                    # being refused for lack of the room this attempt just took.
                    claim = {
                        "idempotency_key": key,
                        "case_id": case_id,
                        "order_id": order_id,
                        "amount": amount,
                        "status": Held.HELD.value,
                        "created_at": now,
                        "updated_at": now,
                    }
                    session.execute(_claiming(), [claim])
                else:
                    already = row.amount
                if amount > already and not _take(session, order_id, amount - already):
                    raise _NoRoom  # rolls the claim back: an existing hold keeps what it had
                if amount < already:
                    _give_back(session, order_id, already - amount)
                if row is not None and row.amount != amount:  # an existing hold, set again
                    row.amount = amount
                    row.updated_at = now
                return Held.HELD
        except _NoRoom:
            return Held.REFUSED
        except IntegrityError:
            # Another attempt with the same key claimed it first and committed: ask again,
            # now finding its row.
            if not self._exists(key):
                raise  # not a duplicate key (an unknown case): nothing to find
            return self.hold(key, case_id=case_id, order_id=order_id, amount=amount, audit=audit)

    def _exists(self, key: str) -> bool:
        with self._db.read() as session:
            return session.get(RefundReservation, key) is not None

    def release(self, key: str, *, audit: Sequence[AuditEntry] = ()) -> bool:
        """Give a held amount back to the order; False when nothing was held for ``key``.

        ``audit`` lines are written in the same transaction, released or not.
        """
        with self._db.transaction() as session:
            row = session.get(RefundReservation, key, with_for_update=True)
            audit_trail.write(session, audit)
            if row is None or row.status != Held.HELD.value:
                return False
            released = session.execute(
                update(RefundReservation)
                .where(
                    RefundReservation.idempotency_key == key,
                    RefundReservation.status == Held.HELD.value,
                )
                .values(status=Held.RELEASED.value, updated_at=datetime.now(UTC))
            )
            if _rowcount(released) != 1:
                return False
            _give_back(session, row.order_id, row.amount)
            return True

    def record(self, instruction: RefundInstruction, reference: str) -> RefundReceipt:
        """Write the payment once, moving its amount from reserved to refunded.

        One transaction: the ledger row, the order's totals and the reservation. A second
        write for the same key returns the first.
        """
        cents = _cents(instruction.amount)
        try:
            with self._db.transaction() as session:
                entry = {
                    "idempotency_key": instruction.idempotency_key,
                    "case_id": instruction.case_id,
                    "order_id": instruction.order_id,
                    "customer_id": instruction.customer_id,
                    "method": instruction.method.value,
                    "amount": instruction.amount,
                    "reference": reference,
                    "issued_at": instruction.issued_at,
                }
                # A repeat fails here, on the unique key, before the order is touched.
                session.execute(_entering(), [entry])
                paid = session.execute(
                    _reservation_paid(),
                    {
                        "paid_key": instruction.idempotency_key,
                        "held_amount": instruction.amount,
                        "paid_at": datetime.now(UTC),
                    },
                    execution_options=_UNSYNCED,
                )
                if _rowcount(paid) != 1:
                    raise RuntimeError(
                        f"no reservation of {instruction.amount:.2f} is held for "
                        f"{instruction.idempotency_key}: the gateway must not have been called"
                    )
                session.execute(
                    _paying(),
                    {"on_order": instruction.order_id, "cents": cents},
                    execution_options=_UNSYNCED,
                )
                return RefundReceipt(
                    reference=reference,
                    method=instruction.method,
                    amount=instruction.amount,
                    issued_at=instruction.issued_at,
                )
        except IntegrityError:
            existing = self.find(instruction.idempotency_key)
            if existing is None:
                raise
            return existing


@dataclass(frozen=True)
class ChargeOnOrder:
    """A charge on an order and the type of the case that made it (``rush``...)."""

    case_type: str
    receipt: ChargeReceipt


class ChargeLedger:
    """Charges beyond an order's price (a rush fee, the cost of an order change), each
    recorded once, with the order's total raised by it.

    The fee becomes part of what the order cost, so the one refund mechanism (RefundLedger,
    which pays back at most ``total - refunded - reserved``) can pay it back like any other
    part of the order. The total is raised in SQL, never read into Python and written back.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def find(self, idempotency_key: str) -> ChargeReceipt | None:
        with self._db.read() as session:
            row = session.scalar(
                select(OrderCharge).where(OrderCharge.idempotency_key == idempotency_key)
            )
            return None if row is None else _charge_receipt(row)

    def on_order(self, order_id: str) -> tuple[ChargeOnOrder, ...]:
        """Every charge beyond the order's price, oldest first, with the type of the case
        that made it (a rush fee, an order change): a billing review names each one."""
        with self._db.read() as session:
            rows = session.execute(
                select(OrderCharge, Case.type)
                .join(Case, Case.id == OrderCharge.case_id)
                .where(OrderCharge.order_id == order_id)
                .order_by(OrderCharge.charged_at, OrderCharge.id)
            ).all()
            return tuple(
                ChargeOnOrder(case_type=case_type, receipt=_charge_receipt(row))
                for row, case_type in rows
            )

    def record(self, charge: FeeCharge, reference: str) -> ChargeReceipt:
        """Write the charge once: one transaction for its row, the order's total and
        ``charge.audit``. A second write for the same key returns the first receipt."""
        cents = _literal(_cents(charge.amount))
        try:
            with self._db.transaction() as session:
                row = OrderCharge(
                    idempotency_key=charge.idempotency_key,
                    case_id=charge.case_id,
                    order_id=charge.order_id,
                    customer_id=charge.customer_id,
                    amount=charge.amount,
                    reference=reference,
                    charged_at=charge.charged_at,
                )
                session.add(row)
                session.flush()  # a repeat fails here, before the order is touched
                raised = session.execute(
                    update(Order)
                    .where(Order.id == charge.order_id)
                    .values(total=Order.total + cents)
                )
                if _rowcount(raised) != 1:
                    raise LookupError(f"order {charge.order_id} does not exist")
                audit_trail.write(session, charge.audit)
                return _charge_receipt(row)
        except IntegrityError:
            # Recorded before (a retry, or a concurrent attempt that committed first). The
            # lines this attempt carries are written all the same: each is written once.
            with self._db.transaction() as session:
                existing = session.scalar(
                    select(OrderCharge).where(OrderCharge.idempotency_key == charge.idempotency_key)
                )
                if existing is None:
                    raise  # not a duplicate key (an unknown case): nothing to find
                audit_trail.write(session, charge.audit)
                return _charge_receipt(existing)


def _charge_receipt(row: OrderCharge) -> ChargeReceipt:
    return ChargeReceipt(reference=row.reference, amount=row.amount, charged_at=row.charged_at)


def _cents(amount: Decimal) -> int:
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} has fractions of a cent")
    return int(cents)


def _literal(cents: int) -> ColumnElement[int]:
    # Integer cents, typed as such: the columns hold cents, the expression stays in SQL.
    return literal(cents, BigInteger)


def _take(session: Session, order_id: str, amount: Decimal) -> bool:
    """Reserve ``amount`` on the order if it is still refundable: check and take at once."""
    params = {"on_order": order_id, "cents": _cents(amount)}
    return _rowcount(session.execute(_taking(), params, execution_options=_UNSYNCED)) == 1


def _give_back(session: Session, order_id: str, amount: Decimal) -> None:
    params = {"on_order": order_id, "cents": _cents(amount)}
    session.execute(_giving_back(), params, execution_options=_UNSYNCED)


# The ledger's statements are built once and run with their amounts as parameters: building
# a statement costs more than running it. Their transactions load no order or reservation
# row, so no loaded object needs keeping in step with them.
_UNSYNCED = {"synchronize_session": False}
# Integer cents, typed as such: the columns hold cents, the expressions stay in SQL.
_CENTS = bindparam("cents", type_=BigInteger())


@cache
def _claiming() -> Insert:
    return insert(cast(Table, RefundReservation.__table__))


@cache
def _entering() -> Insert:
    return insert(cast(Table, LedgerEntry.__table__))


@cache
def _taking() -> Update:
    refundable = (
        type_coerce(Order.total, BigInteger)
        - type_coerce(Order.refunded, BigInteger)
        - type_coerce(Order.reserved, BigInteger)
    )
    return (
        update(Order)
        .where(Order.id == bindparam("on_order"), refundable >= _CENTS)
        .values(reserved=Order.reserved + _CENTS)
    )


@cache
def _giving_back() -> Update:
    return (
        update(Order)
        .where(Order.id == bindparam("on_order"))
        .values(reserved=Order.reserved - _CENTS)
    )


@cache
def _paying() -> Update:
    """The reserved amount becomes refunded."""
    return (
        update(Order)
        .where(Order.id == bindparam("on_order"))
        .values(reserved=Order.reserved - _CENTS, refunded=Order.refunded + _CENTS)
    )


@cache
def _reservation_paid() -> Update:
    return (
        update(RefundReservation)
        .where(
            RefundReservation.idempotency_key == bindparam("paid_key"),
            RefundReservation.status == Held.HELD.value,
            RefundReservation.amount == bindparam("held_amount"),
        )
        .values(status=Held.PAID.value, updated_at=bindparam("paid_at", type_=UtcDateTime()))
    )


def _rowcount(result: Result[Any]) -> int:
    return int(getattr(result, "rowcount", 0))


def _receipt(entry: LedgerEntry) -> RefundReceipt:
    return RefundReceipt(
        reference=entry.reference,
        method=RefundMethod(entry.method),
        amount=entry.amount,
        issued_at=entry.issued_at,
    )
