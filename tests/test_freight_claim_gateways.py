"""The carrier's freight claims and the claim's replacements, as the local defaults implement
them: filed once per key (a race included), asked where they stand, replacements once per
sku. Specified on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from activities.carrier import LocalCarrier
from activities.cases import CaseActivities
from activities.freight_claim import claim_replacement_id
from infra.db import AuditRecord, CarrierClaim, Database, Order, OrderLine
from tests.conftest import Shop
from tests.races import at_once
from workflows.freight_claim_models import (
    CarrierClaimStatus,
    ClaimCheck,
    ClaimFiling,
    ClaimReplacement,
    ClaimResolution,
    ClaimStatus,
    ReplacementsPlaced,
)
from workflows.models import AuditEntry, CaseOpening, CaseType

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
CASE = "freight-claim-req-1"
KEY = f"{CASE}/carrier-claim"
LINES = (("BISON-RIBEYE", 2, "60.00"), ("ELK-SAUSAGE", 4, "20.00"))


def open_claim_case(activities: CaseActivities, order_id: str = "ORD-1001") -> None:
    activities.open_case(
        CaseOpening(
            case_id=CASE,
            case_type=CaseType.FREIGHT_CLAIM,
            order_id=order_id,
            customer_id="C-100",
            amount=Decimal("250.00"),
            requested_by="agent-amy",
            request={"request_id": "req-1"},
            opened_at=NOW,
        )
    )


def count(db: Database, table: type) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def file(carrier: LocalCarrier, key: str = KEY, amount: str = "250.00") -> str:
    return carrier.file_claim(
        key, case_id=CASE, order_id="ORD-1001", amount=Decimal(amount), at=NOW
    )


# ---- the carrier's claims --------------------------------------------------------------------


def test_a_claim_is_filed_once_per_key_and_a_repeat_gets_its_first_reference(shop: Shop) -> None:
    carrier = LocalCarrier(shop.db)

    first = file(carrier)
    again = file(carrier, amount="999.00")  # the key decides, whatever the repeat says

    assert first.startswith("FCL-") and again == first
    assert count(shop.db, CarrierClaim) == 1
    with shop.db.read() as session:
        row = session.get(CarrierClaim, KEY)
        assert row is not None
        assert (row.status, row.amount, row.settled_amount) == ("filed", Decimal("250.00"), None)
    assert file(carrier, key=f"{CASE}/other") != first


def test_concurrent_filings_with_one_key_write_one_claim(shop: Shop) -> None:
    carrier = LocalCarrier(shop.db)

    results = at_once([lambda: file(carrier) for _ in range(8)])

    assert len(set(results)) == 1 and str(results[0]).startswith("FCL-"), results
    assert count(shop.db, CarrierClaim) == 1


def test_the_claim_status_is_what_the_carrier_said_last(shop: Shop) -> None:
    carrier = LocalCarrier(shop.db)
    file(carrier)
    assert carrier.claim_status(KEY) == ClaimStatus(status=CarrierClaimStatus.FILED)

    with shop.db.transaction() as session:
        session.execute(
            update(CarrierClaim)
            .where(CarrierClaim.key == KEY)
            .values(status="settled", settled_amount=Decimal("180.50"))
        )

    assert carrier.claim_status(KEY) == ClaimStatus(
        status=CarrierClaimStatus.SETTLED, settled_amount=Decimal("180.50")
    )
    with pytest.raises(LookupError):
        carrier.claim_status(f"{CASE}/never-filed")


def test_filing_writes_the_cases_pending_audit_lines_once_under_retry(
    shop: Shop, activities: CaseActivities
) -> None:
    open_claim_case(activities)
    filing = ClaimFiling(
        case_id=CASE,
        key=KEY,
        order_id="ORD-1001",
        amount=Decimal("250.00"),
        at=NOW,
        audit=(AuditEntry(case_id=CASE, seq=2, at=NOW, event="approval_approved", actor="mgr"),),
    )

    first = activities.file_claim(filing)
    retried = activities.file_claim(filing)

    assert first == retried
    assert count(shop.db, CarrierClaim) == 1
    with shop.db.read() as session:
        lines = session.scalars(select(AuditRecord.event).where(AuditRecord.case_id == CASE)).all()
    assert list(lines).count("approval_approved") == 1


# ---- verification and replacements -----------------------------------------------------------


def test_verification_refuses_more_than_the_order_can_refund_and_skus_it_lacks(
    shop: Shop, activities: CaseActivities
) -> None:
    shop.add_order("ORD-7", "200.00", status="shipped", lines=LINES)

    def check(amount: str, resolution: ClaimResolution, *skus: str) -> tuple[bool, str]:
        verdict = activities.verify_claim(
            ClaimCheck(
                case_id=CASE,
                order_id="ORD-7",
                customer_id="C-100",
                amount=Decimal(amount),
                resolution=resolution,
                skus=skus,
            )
        )
        return verdict.ok, verdict.reason

    assert check("200.00", ClaimResolution.REFUND) == (True, "")
    assert check("200.01", ClaimResolution.REFUND)[0] is False
    # A replacement refunds nothing: the amount is what the carrier is asked for.
    assert check("500.00", ClaimResolution.REPLACEMENT, "ELK-SAUSAGE") == (True, "")
    assert check("10.00", ClaimResolution.REPLACEMENT, "YAK-JERKY") == (
        False,
        "not on order ORD-7: YAK-JERKY",
    )


def test_concurrent_replacements_place_one_order_per_sku(
    shop: Shop, activities: CaseActivities
) -> None:
    shop.add_order("ORD-8", "200.00", status="shipped", lines=LINES)
    shipment = ClaimReplacement(
        case_id=CASE,
        order_id="ORD-8",
        customer_id="C-100",
        skus=("BISON-RIBEYE", "ELK-SAUSAGE"),
        at=NOW,
    )

    results = at_once([lambda: activities.place_claim_replacements(shipment) for _ in range(6)])

    expected = tuple(claim_replacement_id(CASE, sku) for sku in shipment.skus)
    placements = [r for r in results if isinstance(r, ReplacementsPlaced)]
    assert len(placements) == len(results), results
    assert {r.order_ids for r in placements} == {expected}
    assert sum(r.created for r in placements) == 2
    with shop.db.read() as session:
        placed = session.scalars(select(Order).where(Order.id.in_(expected))).all()
        skus = session.scalars(
            select(OrderLine.sku).where(OrderLine.order_id.in_(expected)).order_by(OrderLine.sku)
        ).all()
    assert sorted((o.total, o.customer_id) for o in placed) == [(Decimal("0.00"), "C-100")] * 2
    assert list(skus) == ["BISON-RIBEYE", "ELK-SAUSAGE"]
