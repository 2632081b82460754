"""Helpers the refund specifications share (a refund request and the ledger it pays into;
returns pay into the same ledger); the ones every case specification uses come from
``tests.case_helpers``."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import select

from infra.db import LedgerEntry
from tests.conftest import Shop
from workflows.models import RefundRequest


def refund(amount: str, order_id: str = "ORD-1001", **overrides: str) -> RefundRequest:
    fields = {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": order_id,
        "customer_id": "C-100",
        "amount": Decimal(amount),
        "reason": "thawed on arrival",
        "requested_by": "agent-amy",
        **overrides,
    }
    return RefundRequest.model_validate(fields)


def ledger(shop: Shop) -> list[LedgerEntry]:
    """Every ledger entry, as rows."""
    with shop.db.transaction() as session:
        return list(session.scalars(select(LedgerEntry)))


def payments(shop: Shop) -> list[tuple[str, str, Decimal]]:
    """Every ledger entry as (case, method, amount), to compare the money paid whole."""
    with shop.db.transaction() as session:
        rows = session.execute(select(LedgerEntry.case_id, LedgerEntry.method, LedgerEntry.amount))
        return [(case_id, method, amount) for case_id, method, amount in rows]
