"""Helpers the freight claim specifications share (tests/test_freight_claim*.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from temporalio.client import Client

from infra.db import Approval, CarrierClaim, LedgerEntry, Order
from starter import decide
from tests.case_helpers import state_of
from tests.conftest import Shop
from workflows.freight_claim_models import FreightClaimRequest, FreightClaimState
from workflows.models import CaseStatus, Decision, DecisionKind

# A shipped order of two lines (the skus a replacement may name): 300.00 in all.
LINES = (("BISON-RIBEYE", 2, "60.00"), ("ELK-SAUSAGE", 9, "20.00"))
TRACKING = "1Z999AA10123456784"
PHOTOS = ("https://photos.example.com/box-1.jpg", "https://photos.example.com/box-2.jpg")


def shipped_order(shop: Shop, total: str = "300.00", *, customer_id: str = "C-100") -> str:
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    shop.add_order(order_id, total, customer_id=customer_id, status="shipped", lines=LINES)
    return order_id


def claim(order_id: str, amount: str, **fields: Any) -> FreightClaimRequest:
    return FreightClaimRequest.model_validate(
        {
            "request_id": f"req-{uuid.uuid4().hex[:10]}",
            "order_id": order_id,
            "customer_id": "C-100",
            "kind": "damaged",
            "amount": amount,
            "photos": PHOTOS,
            "tracking_number": TRACKING,
            "description": "The box arrived crushed and the meat thawed.",
            "requested_by": "agent-amy",
            **fields,
        }
    )


async def claim_state(
    client: Client, case_id: str, ready: Callable[[FreightClaimState], bool]
) -> FreightClaimState:
    return await state_of(client, case_id, FreightClaimState, ready)


async def status_of(client: Client, case_id: str, status: CaseStatus) -> FreightClaimState:
    return await claim_state(client, case_id, lambda s: s.status is status)


async def approve(client: Client, case_id: str, approver: str = "mgr-mia") -> None:
    await decide(client, case_id, Decision(approver_id=approver, decision=DecisionKind.APPROVE))


async def reject(client: Client, case_id: str, note: str) -> None:
    await decide(
        client,
        case_id,
        Decision(approver_id="mgr-mia", decision=DecisionKind.REJECT, note=note),
    )


def refunds(shop: Shop, case_id: str) -> list[LedgerEntry]:
    with shop.db.transaction() as session:
        return list(session.scalars(select(LedgerEntry).where(LedgerEntry.case_id == case_id)))


def carrier_claims(shop: Shop, case_id: str) -> list[CarrierClaim]:
    with shop.db.transaction() as session:
        rows = list(session.scalars(select(CarrierClaim).where(CarrierClaim.case_id == case_id)))
        session.expunge_all()
        return rows


def approvals(shop: Shop, case_id: str) -> list[Approval]:
    with shop.db.transaction() as session:
        rows = list(session.scalars(select(Approval).where(Approval.case_id == case_id)))
        session.expunge_all()
        return rows


def carrier_answers(shop: Shop, case_id: str, status: str, settled: str | None = None) -> None:
    """The carrier settles (or denies) the case's claim: what ``claim_status`` will read."""
    with shop.db.transaction() as session:
        session.execute(
            update(CarrierClaim)
            .where(CarrierClaim.case_id == case_id)
            .values(
                status=status,
                settled_amount=None if settled is None else Decimal(settled),
                updated_at=datetime.now(UTC),
            )
        )


def replacement_orders(shop: Shop, order_ids: tuple[str, ...]) -> list[Order]:
    with shop.db.transaction() as session:
        rows = [session.get(Order, order_id) for order_id in order_ids]
        session.expunge_all()
        return [row for row in rows if row is not None]
