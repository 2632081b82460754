"""What a billing dispute reads and writes in the database, as the local defaults do it.

The review reads the order's charges and refunds from the ledgers (exact amounts, oldest
first, each charge named by the case that made it); the resolution's note is written once
per case however many attempts race, with the case's audit lines. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from activities.cases import CaseActivities
from infra.db import AuditRecord, OrderNote
from tests.billing_dispute_helpers import LINES, disputed_order, pay_back
from tests.conftest import Shop
from tests.races import at_once
from workflows.billing_dispute_models import BillingReview, DisputeNote
from workflows.models import AuditEntry, CaseOpening, CaseType, RefundMethod

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
CASE = "billing-dispute-req-1"


def review(order_id: str) -> BillingReview:
    return BillingReview(case_id=CASE, order_id=order_id, customer_id="C-100")


def test_the_review_lists_lines_charges_and_refunds_with_exact_totals(
    shop: Shop, activities: CaseActivities
) -> None:
    order_id = disputed_order(shop, lines=LINES)
    pay_back(shop, order_id, Decimal("0.01"), reference="RF-CENT", key="cent")

    breakdown = activities.review_billing(review(order_id))

    assert breakdown.refusal == ""
    assert [(line.sku, line.quantity, line.line_total) for line in breakdown.lines] == [
        ("BISON-RIBEYE", 2, Decimal("120.00")),
        ("ELK-SAUSAGE", 4, Decimal("80.00")),
    ]
    assert [(c.label, c.reference, c.amount) for c in breakdown.charges] == [
        ("Rush fee", "CH-RUSHFEE001", Decimal("55.00"))
    ]
    assert [(r.reference, r.amount, r.method) for r in breakdown.refunds] == [
        ("RF-LATEFEE001", Decimal("55.00"), RefundMethod.ORIGINAL_PAYMENT),
        ("RF-CENT", Decimal("0.01"), RefundMethod.ORIGINAL_PAYMENT),
    ]
    assert breakdown.total == Decimal("255.00")
    assert breakdown.refunded == Decimal("55.01")
    assert breakdown.refundable == Decimal("199.99")
    assert breakdown.net_paid == Decimal("199.99")
    assert breakdown.adjustments == Decimal("0")


def test_an_order_not_the_customers_has_no_breakdown(
    shop: Shop, activities: CaseActivities
) -> None:
    assert "not this customer's" in activities.review_billing(review("ORD-2001")).refusal
    assert "does not exist" in activities.review_billing(review("ORD-NONE")).refusal


def test_concurrent_attempts_write_one_note_and_each_audit_line_once(
    shop: Shop, activities: CaseActivities
) -> None:
    activities.open_case(
        CaseOpening(
            case_id=CASE,
            case_type=CaseType.BILLING_DISPUTE,
            order_id="ORD-1001",
            customer_id="C-100",
            amount=None,
            requested_by="agent-amy",
            request={"request_id": "req-1"},
            opened_at=NOW,
        )
    )
    note = DisputeNote(
        case_id=CASE,
        order_id="ORD-1001",
        text="Resolution: no change",
        at=NOW,
        audit=tuple(
            AuditEntry(case_id=CASE, seq=seq, at=NOW, event=f"line {seq}", actor="system")
            for seq in (1, 2)
        ),
    )

    results = at_once([lambda: activities.document_dispute_resolution(note) for _ in range(6)])

    assert sorted(results, key=str) == [False] * 5 + [True]
    with shop.db.read() as session:
        notes = session.scalars(select(OrderNote).where(OrderNote.case_id == CASE)).all()
        seqs = session.scalars(
            select(AuditRecord.seq).where(AuditRecord.case_id == CASE).order_by(AuditRecord.seq)
        ).all()
    assert [(n.kind, n.text) for n in notes] == [("dispute_resolution", "Resolution: no change")]
    assert list(seqs) == [1, 2]
