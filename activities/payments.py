"""The payment gateway (card refunds and store credit) and the refund ledger.

A gateway must be idempotent on ``idempotency_key``, as real ones are: a repeated call
returns the first reference and moves no more money. The ledger records each payment once
(unique key), with the order's refunded total, in one transaction.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from activities.db import Database, LedgerEntry, Order
from workflows.models import RefundInstruction, RefundMethod, RefundReceipt


class PaymentDeclined(Exception):
    """The gateway refused for good (closed card, fraud hold): retrying will not help."""


class PaymentUnavailable(Exception):
    """The gateway could not be reached or timed out: try again later."""


class PaymentGateway(Protocol):
    def refund(self, instruction: RefundInstruction) -> str:
        """Pay ``instruction.amount`` back; return the gateway's reference."""
        ...


class LocalPaymentGateway:
    """The default gateway: refuses closed payment accounts, otherwise pays at once."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def refund(self, instruction: RefundInstruction) -> str:
        with self._db.transaction() as session:
            order = session.get(Order, instruction.order_id)
            if order is None:
                raise PaymentDeclined(f"order {instruction.order_id} is unknown to the gateway")
            if (
                instruction.method is RefundMethod.ORIGINAL_PAYMENT
                and order.payment_account != "active"
            ):
                raise PaymentDeclined("the original payment account is closed")
        prefix = "SC" if instruction.method is RefundMethod.STORE_CREDIT else "RF"
        digest = hashlib.sha256(instruction.idempotency_key.encode()).hexdigest()[:10]
        return f"{prefix}-{digest.upper()}"


class RefundLedger:
    def __init__(self, db: Database) -> None:
        self._db = db

    def find(self, idempotency_key: str) -> RefundReceipt | None:
        with self._db.transaction() as session:
            entry = session.scalar(
                select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key)
            )
            return None if entry is None else _receipt(entry)

    def record(self, instruction: RefundInstruction, reference: str) -> RefundReceipt:
        """Write the payment once; a second write for the same key returns the first."""
        try:
            with self._db.transaction() as session:
                entry = LedgerEntry(
                    idempotency_key=instruction.idempotency_key,
                    case_id=instruction.case_id,
                    order_id=instruction.order_id,
                    customer_id=instruction.customer_id,
                    method=instruction.method.value,
                    amount=instruction.amount,
                    reference=reference,
                    issued_at=instruction.issued_at,
                )
                session.add(entry)
                order = session.get(Order, instruction.order_id)
                if order is not None:
                    order.refunded = order.refunded + instruction.amount
                session.flush()
                return _receipt(entry)
        except IntegrityError:
            existing = self.find(instruction.idempotency_key)
            if existing is None:
                raise
            return existing


def _receipt(entry: LedgerEntry) -> RefundReceipt:
    return RefundReceipt(
        reference=entry.reference,
        method=RefundMethod(entry.method),
        amount=entry.amount,
        issued_at=entry.issued_at,
    )
