"""Customer emails name an order only to that order's own customer.

A request may name an order that is not the customer's (a typo, or someone trying). The case
is refused, and the customer it was made for gets a neutral letter that names no order,
amount or reason; the order's owner gets nothing. Decided where emails get their addresses
and templates (``CaseActivities.send_notice``), so every procedure inherits it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from temporalio.client import Client

from activities.cases import CaseActivities
from infra.db import AuditRecord, OutboxEmail
from tests.case_helpers import outbox
from tests.conftest import Cases, Shop
from tests.refund_helpers import refund
from workflows.models import (
    AuditEntry,
    CaseOpening,
    CaseStatus,
    CaseType,
    Notice,
    Outcome,
    Recipient,
)

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def open_case(activities: CaseActivities, case_id: str, order_id: str, customer_id: str) -> str:
    activities.open_case(
        CaseOpening(
            case_id=case_id,
            case_type=CaseType.REFUND,
            order_id=order_id,
            customer_id=customer_id,
            amount=Decimal("100.00"),
            requested_by="agent-amy",
            request={},
            opened_at=NOW,
        )
    )
    return case_id


def rejection(case_id: str, order_id: str) -> Notice:
    return Notice(
        entry=AuditEntry(
            case_id=case_id,
            seq=1,
            at=NOW,
            event="case_rejected",
            actor="system",
            detail={"email": "refund_rejected", "to": "customer"},
        ),
        template="refund_rejected",
        recipient=Recipient.CUSTOMER,
        context={
            "case_id": case_id,
            "case_type": "refund",
            "order_id": order_id,
            "amount": "100.00",
            "currency": "USD",
            "reason": f"order {order_id} is not this customer's",
        },
    )


def every_email(shop: Shop) -> list[OutboxEmail]:
    with shop.db.transaction() as session:
        return list(session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)))


def written(email: OutboxEmail) -> str:
    return f"{email.subject}\n{email.body}"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_an_email_about_someone_elses_order_names_no_order_and_goes_to_nobody_else(
    shop: Shop, activities: CaseActivities
) -> None:
    # Ada (C-100) named Grace's order ORD-2001.
    case_id = open_case(activities, "refund-mismatch", "ORD-2001", "C-100")
    activities.send_notice(rejection(case_id, "ORD-2001"))

    [email] = every_email(shop)
    assert email.to_address == "ada@example.com"
    assert email.template == "request_not_processed"
    assert "ORD-2001" not in written(email)
    assert "100.00" not in written(email)
    assert "Grace" not in written(email)
    assert case_id in written(email) and "Ada Lovelace" in email.body
    with shop.db.transaction() as session:
        [line] = session.scalars(select(AuditRecord).where(AuditRecord.case_id == case_id))
        # The audit trail says what was sent, and what was held back.
        assert line.detail["email"] == "request_not_processed"
        assert line.detail["withheld"] == "refund_rejected"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_an_unknown_order_is_not_named_either(shop: Shop, activities: CaseActivities) -> None:
    case_id = open_case(activities, "refund-unknown", "ORD-9999", "C-100")
    activities.send_notice(rejection(case_id, "ORD-9999"))
    [email] = every_email(shop)
    assert email.to_address == "ada@example.com"
    assert "ORD-9999" not in written(email)


def test_the_orders_own_customer_gets_the_full_letter(
    shop: Shop, activities: CaseActivities
) -> None:
    case_id = open_case(activities, "refund-own", "ORD-1001", "C-100")
    activities.send_notice(rejection(case_id, "ORD-1001"))
    [email] = every_email(shop)
    assert email.to_address == "ada@example.com"
    assert email.template == "refund_rejected"
    assert "ORD-1001" in email.subject


async def test_a_refund_naming_another_customers_order_tells_its_owner_nothing(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("100.00", order_id="ORD-2001", customer_id="C-100"))
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.REJECTED
    emails = outbox(shop)
    assert [e.to_address for e in emails] == ["ada@example.com"]
    assert all("ORD-2001" not in written(e) for e in emails)
