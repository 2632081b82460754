"""Helpers the billing dispute specifications share (tests/test_billing_dispute*.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from temporalio.client import Client

from activities import audit as audit_trail
from activities.payments import ChargeLedger, Held, RefundLedger
from infra.db import LedgerEntry, OrderNote
from registry import ACCOUNTING_ANSWER, DISPUTE_ESCALATED, DISPUTE_RESOLVED
from settings import Settings
from starter import deliver
from tests.case_helpers import state_of
from tests.conftest import Shop
from workflows.billing_dispute_models import (
    BillingDisputeRequest,
    BillingDisputeState,
    DisputeEscalation,
    DisputeOutcome,
    DisputeResolution,
)
from workflows.models import (
    CaseOpening,
    CaseStatus,
    CaseType,
    Outcome,
    RefundInstruction,
    RefundMethod,
)
from workflows.rush_models import FeeCharge

# Two lines (120.00 + 80.00), a 55.00 rush fee charged and later refunded: the invoice's
# total is 255.00, 55.00 refunded, 200.00 still refundable.
LINES = (("BISON-RIBEYE", 2, "60.00"), ("ELK-SAUSAGE", 4, "20.00"))
# A larger order, for amounts around the 500.00 threshold: 3 x 250.00.
BIG_LINES = (("WAGYU-STRIPLOIN", 3, "250.00"),)


def disputed_order(
    shop: Shop,
    *,
    lines: tuple[tuple[str, int, str], ...] = LINES,
    rush_fee: str | None = "55.00",
    fee_refunded: bool = True,
) -> str:
    """A delivered order of ``lines`` (its total their sum), with a rush fee charged by a
    rush case (raising the total) and, when ``fee_refunded``, that fee refunded; its id."""
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    total = sum((Decimal(price) * quantity for _, quantity, price in lines), Decimal("0"))
    shop.add_order(order_id, f"{total:.2f}", lines=lines)
    if rush_fee is None:
        return order_id
    rush_case = f"rush-{order_id}"
    at = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    with shop.db.transaction() as session:
        session.add(
            audit_trail.case_row(
                CaseOpening(
                    case_id=rush_case,
                    case_type=CaseType.RUSH,
                    order_id=order_id,
                    customer_id="C-100",
                    amount=None,
                    requested_by="agent-amy",
                    request={"request_id": order_id},
                    opened_at=at,
                ),
                Settings().case_rules(),
            )
        )
    fee = Decimal(rush_fee)
    ChargeLedger(shop.db).record(
        FeeCharge(
            case_id=rush_case,
            idempotency_key=f"{rush_case}/rush-fee",
            order_id=order_id,
            customer_id="C-100",
            amount=fee,
            charged_at=at,
        ),
        "CH-RUSHFEE001",
    )
    if fee_refunded:
        pay_back(shop, order_id, fee, reference="RF-LATEFEE001")
    return order_id


def pay_back(
    shop: Shop, order_id: str, amount: Decimal, *, reference: str, key: str = "refund"
) -> None:
    """A refund paid on the order by its rush case (see ``disputed_order``), by the ledger."""
    ledger = RefundLedger(shop.db)
    case_id = f"rush-{order_id}"
    key = f"{case_id}/{key}"
    assert ledger.hold(key, case_id=case_id, order_id=order_id, amount=amount) is Held.HELD
    ledger.record(
        RefundInstruction(
            case_id=case_id,
            idempotency_key=key,
            order_id=order_id,
            customer_id="C-100",
            amount=amount,
            method=RefundMethod.ORIGINAL_PAYMENT,
            issued_at=datetime(2026, 11, 5, 15, 0, tzinfo=UTC),
        ),
        reference,
    )


def dispute(order_id: str, **fields: Any) -> BillingDisputeRequest:
    return BillingDisputeRequest.model_validate(
        {
            "request_id": f"req-{uuid.uuid4().hex[:10]}",
            "order_id": order_id,
            "customer_id": "C-100",
            "description": "I was charged a rush fee I never asked for",
            "requested_by": "agent-amy",
            **fields,
        }
    )


def resolution(
    outcome: str, amount: str | None = None, *, by: str = "agent-amy", event_id: str = "res-1"
) -> DisputeResolution:
    return DisputeResolution(
        event_id=event_id,
        outcome=DisputeOutcome(outcome),
        amount=Decimal(amount) if amount is not None else None,
        explanation="the rush fee was charged twice by mistake",
        resolved_by=by,
    )


async def resolve(client: Client, case_id: str, answer: DisputeResolution) -> BillingDisputeState:
    """An agent's resolution, by its update (refusals raise EventRefused)."""
    state: BillingDisputeState = await deliver(client, case_id, DISPUTE_RESOLVED, answer)
    return state


async def escalate(
    client: Client, case_id: str, reason: str = "the customer's bank shows a second charge"
) -> BillingDisputeState:
    state: BillingDisputeState = await deliver(
        client,
        case_id,
        DISPUTE_ESCALATED,
        DisputeEscalation(event_id="esc-1", reason=reason, escalated_by="agent-amy"),
    )
    return state


async def answer(client: Client, case_id: str, reply: DisputeResolution) -> BillingDisputeState:
    state: BillingDisputeState = await deliver(client, case_id, ACCOUNTING_ANSWER, reply)
    return state


async def dispute_state(
    client: Client, case_id: str, ready: Callable[[BillingDisputeState], bool]
) -> BillingDisputeState:
    return await state_of(client, case_id, BillingDisputeState, ready)


def invoiced(state: BillingDisputeState) -> bool:
    """The charges are reviewed and the invoice sent: the case waits for an agent."""
    return state.status is CaseStatus.REVIEWING and state.invoice_total is not None


async def status_of(client: Client, case_id: str, status: CaseStatus) -> BillingDisputeState:
    return await dispute_state(client, case_id, lambda s: s.status is status)


def refunds(shop: Shop, case_id: str) -> list[LedgerEntry]:
    with shop.db.transaction() as session:
        return list(session.scalars(select(LedgerEntry).where(LedgerEntry.case_id == case_id)))


def notes(shop: Shop, order_id: str) -> list[OrderNote]:
    with shop.db.transaction() as session:
        query = select(OrderNote).where(OrderNote.order_id == order_id).order_by(OrderNote.id)
        return list(session.scalars(query))


async def ended(client: Client, case_id: str) -> Outcome:
    """The case's outcome, once it ends (time skips while this waits)."""
    outcome: Outcome = await client.get_workflow_handle(case_id, result_type=Outcome).result()
    return outcome
