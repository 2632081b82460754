"""BillingDisputeWorkflow (SOPs Billing Disputes, Department Transfers, Manager Authorization
Required), specified against the time-skipping server and a real database."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from infra.db import Case
from settings import Settings
from starter import EventRefused, decide, start_case
from tests.billing_dispute_helpers import (
    BIG_LINES,
    answer,
    dispute,
    dispute_state,
    disputed_order,
    ended,
    escalate,
    invoiced,
    notes,
    pay_back,
    refunds,
    resolution,
    resolve,
    status_of,
)
from tests.case_helpers import (
    EASTERN,
    FRIDAY,
    MONDAY,
    TUESDAY,
    WEDNESDAY,
    audit,
    emails,
    events,
    eventually,
    move_to,
    sleep_until,
)
from tests.conftest import Cases, Shop
from workflows import policy
from workflows.billing_dispute_models import BillingDisputeRequest
from workflows.models import CaseStatus, Decision, DecisionKind

ACCOUNTING = "accounting@exoticmeats.com"
CS_MANAGER = "csmanager@exoticmeats.com"


async def start(cases: Cases, request: BillingDisputeRequest) -> WorkflowHandle[Any, Any]:
    return await cases.start(start_case, request)


async def reviewing(cases: Cases, client: Client, request: BillingDisputeRequest) -> str:
    """A dispute opened and waiting for an agent (the invoice sent); its case id."""
    handle = await start(cases, request)
    await dispute_state(client, handle.id, invoiced)
    return handle.id


def amount_row(body: str, label: str, amount: str) -> bool:
    """The email's table has a row ``label`` ... ``amount`` (columns padded with spaces)."""
    return re.search(rf"^{re.escape(label)}\s+{re.escape(amount)}$", body, re.MULTILINE) is not None


def addressed(shop: Shop, case_id: str, template: str) -> list[str]:
    return [email.to_address for email in emails(shop, case_id, template)]


# ---- the review and the invoice breakdown ------------------------------------------------------


async def test_the_invoice_breakdown_lists_lines_the_rush_fee_and_refunds_with_exact_totals(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = disputed_order(shop)
    case_id = await reviewing(cases, client, dispute(order_id))

    [email] = await eventually(lambda: emails(shop, case_id, "billing_invoice"))
    body = email.body
    assert email.to_address == "ada@example.com"
    assert re.search(r"^BISON-RIBEYE\s+2\s+60\.00\s+120\.00$", body, re.MULTILINE)
    assert re.search(r"^ELK-SAUSAGE\s+4\s+20\.00\s+80\.00$", body, re.MULTILINE)
    assert amount_row(body, "Items subtotal", "200.00")
    assert amount_row(body, "Rush fee (CH-RUSHFEE001, 2026-11-02)", "55.00")
    assert amount_row(body, "Total charged (USD)", "255.00")
    assert amount_row(body, "Refund to original payment (RF-LATEFEE001, 2026-11-05)", "-55.00")
    assert amount_row(body, "Refunded so far", "55.00")
    assert amount_row(body, "Net paid (USD)", "200.00")
    assert "Other adjustments" not in body
    state = await status_of(client, case_id, CaseStatus.REVIEWING)
    assert state.invoice_total == Decimal("255.00")
    assert state.refunded_before == Decimal("55.00")
    assert state.refundable == Decimal("200.00")
    assert events(shop, case_id)[:3] == ["case_opened", "reviewing_charges", "invoice_sent"]


async def test_a_dispute_on_an_order_that_is_not_the_customers_is_rejected_unreviewed(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, dispute("ORD-2001"))  # Grace's order, disputed as Ada

    outcome = await handle.result()

    assert outcome.status is CaseStatus.REJECTED
    assert "not this customer's" in outcome.reason
    assert emails(shop, handle.id, "billing_invoice") == []


# ---- an agent's resolution -----------------------------------------------------------------------


async def test_an_agents_refund_of_500_is_within_authority_paid_once_and_resolved(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = disputed_order(shop, lines=BIG_LINES)
    case_id = await reviewing(cases, client, dispute(order_id))

    await resolve(client, case_id, resolution("refund", "500.00"))
    await resolve(client, case_id, resolution("refund", "500.00"))  # a retry: answered alike

    outcome = await ended(client, case_id)
    assert outcome.status is CaseStatus.RESOLVED
    [paid] = refunds(shop, case_id)
    assert paid.amount == Decimal("500.00")
    assert paid.method == "original_payment"
    assert outcome.amount == Decimal("500.00") and outcome.reference == paid.reference
    assert "approval_requested" not in [e.template for e in emails(shop, case_id)]
    [told] = emails(shop, case_id, "billing_resolved")
    assert "refunded 500.00 to the original payment" in told.body
    assert "charged twice by mistake" in told.body
    assert paid.reference in told.body


async def test_an_agents_refund_over_500_waits_for_a_manager_before_paying(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = disputed_order(shop, lines=BIG_LINES)
    case_id = await reviewing(cases, client, dispute(order_id))

    await resolve(client, case_id, resolution("refund", "500.01"))

    waiting = await status_of(client, case_id, CaseStatus.AWAITING_APPROVAL)
    assert waiting.approval is not None
    assert waiting.approval.amount == Decimal("500.01")
    assert waiting.approval.requested_by == "agent-amy"
    assert refunds(shop, case_id) == []
    await decide(
        client,
        case_id,
        Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE, event_id="dec-1"),
    )
    outcome = await ended(client, case_id)
    assert outcome.status is CaseStatus.RESOLVED
    [paid] = refunds(shop, case_id)
    assert paid.amount == Decimal("500.01")
    assert events(shop, case_id).index("approval_approved") < events(shop, case_id).index(
        "refund_started"
    )


async def test_a_refund_over_500_a_manager_refuses_ends_rejected_and_pays_nothing(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = disputed_order(shop, lines=BIG_LINES)
    case_id = await reviewing(cases, client, dispute(order_id))
    await resolve(client, case_id, resolution("credit", "600.00"))
    await status_of(client, case_id, CaseStatus.AWAITING_APPROVAL)

    await decide(
        client,
        case_id,
        Decision(
            approver_id="mgr-mia",
            decision=DecisionKind.REJECT,
            note="the fee was correct",
            event_id="dec-1",
        ),
    )

    outcome = await ended(client, case_id)
    assert outcome.status is CaseStatus.REJECTED
    assert outcome.reason == "not authorized by a manager: the fee was correct"
    assert refunds(shop, case_id) == []
    assert notes(shop, order_id) == []
    [told] = emails(shop, case_id, "refund_rejected")
    assert "600.00" in told.body


async def test_a_credit_is_paid_as_store_credit(client: Client, cases: Cases, shop: Shop) -> None:
    case_id = await reviewing(cases, client, dispute(disputed_order(shop)))

    await resolve(client, case_id, resolution("credit", "40.00"))

    outcome = await ended(client, case_id)
    assert outcome.status is CaseStatus.RESOLVED
    [paid] = refunds(shop, case_id)
    assert paid.method == "store_credit"
    assert paid.amount == Decimal("40.00")
    assert paid.reference.startswith("SC-")
    [told] = emails(shop, case_id, "billing_resolved")
    assert "credited 40.00 as store credit" in told.body


async def test_a_refund_over_what_the_order_can_still_refund_is_refused_and_changes_nothing(
    client: Client, cases: Cases, shop: Shop
) -> None:
    case_id = await reviewing(cases, client, dispute(disputed_order(shop)))

    with pytest.raises(EventRefused) as refused:
        await resolve(client, case_id, resolution("refund", "200.01"))

    assert refused.value.kind == "OverRefundable"
    assert "200.00" in refused.value.message
    state = await status_of(client, case_id, CaseStatus.REVIEWING)
    assert state.resolution is None
    assert refunds(shop, case_id) == []


async def test_a_refund_the_ledger_refuses_since_the_review_ends_rejected_with_the_reason(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = disputed_order(shop)
    case_id = await reviewing(cases, client, dispute(order_id))
    # Another case refunds most of the order after the review.
    pay_back(shop, order_id, Decimal("180.00"), reference="RF-2", key="goodwill")

    await resolve(client, case_id, resolution("refund", "50.00"))

    outcome = await ended(client, case_id)
    assert outcome.status is CaseStatus.REJECTED
    assert "only 20.00" in outcome.reason
    assert refunds(shop, case_id) == []
    assert len(emails(shop, case_id, "refund_rejected")) == 1


async def test_the_resolution_is_documented_in_the_audit_trail_and_the_orders_notes(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = disputed_order(shop)
    case_id = await reviewing(cases, client, dispute(order_id))

    await resolve(client, case_id, resolution("no_change", by="sup-sam"))

    outcome = await ended(client, case_id)
    assert outcome.status is CaseStatus.RESOLVED
    assert refunds(shop, case_id) == []
    [note] = notes(shop, order_id)
    assert note.kind == "dispute_resolution"
    assert note.case_id == case_id
    assert "no change" in note.text and "sup-sam" in note.text
    assert "charged twice by mistake" in note.text
    lines = {line.event: line for line in audit(shop, case_id)}
    assert lines["dispute_resolved"].actor == "sup-sam"
    assert lines["dispute_resolved"].detail["outcome"] == "no_change"
    assert lines["dispute_resolution_documented"].actor == "sup-sam"
    order = events(shop, case_id)
    assert order.index("dispute_resolved") < order.index("dispute_resolution_documented")
    assert order[-1] == "case_resolved"
    with shop.db.read() as session:
        case = session.get(Case, case_id)
        assert case is not None and case.status == "resolved"
    [told] = emails(shop, case_id, "billing_resolved")
    assert "the charges stand" in told.body


async def test_a_silent_agent_is_reminded_after_a_business_day_then_the_cs_manager_is_told(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, FRIDAY, 10)
    case_id = await reviewing(cases, client, dispute(disputed_order(shop)))

    await move_to(env, MONDAY, 9, 59)  # one business day after Friday 10:00 is Monday 10:00
    assert emails(shop, case_id, "billing_agent_reminder") == []
    await env.sleep(timedelta(minutes=2))
    [reminder] = await eventually(lambda: emails(shop, case_id, "billing_agent_reminder"))
    assert reminder.to_address == "agent-amy@exoticmeats.com"
    assert emails(shop, case_id, "billing_agent_escalated") == []

    await move_to(env, TUESDAY, 10, 1)
    [told] = await eventually(lambda: emails(shop, case_id, "billing_agent_escalated"))
    assert told.to_address == CS_MANAGER
    await env.sleep(timedelta(days=10))  # no expiry: the agent still owns it
    state = await status_of(client, case_id, CaseStatus.REVIEWING)
    await resolve(client, case_id, resolution("no_change"))
    assert state.resolution is None
    assert (await ended(client, case_id)).status is CaseStatus.RESOLVED


# ---- escalation to Accounting --------------------------------------------------------------------


async def test_an_escalation_answered_by_accounting_resolves_it(
    client: Client, cases: Cases, shop: Shop
) -> None:
    order_id = disputed_order(shop)
    case_id = await reviewing(cases, client, dispute(order_id))

    escalated = await escalate(client, case_id)
    assert escalated.escalated

    await status_of(client, case_id, CaseStatus.WITH_ACCOUNTING)
    [transfer] = await eventually(lambda: emails(shop, case_id, "billing_accounting_transfer"))
    assert transfer.to_address == ACCOUNTING
    assert "ext. 203" in transfer.body
    assert "bank shows a second charge" in transfer.body
    assert amount_row(transfer.body, "Total charged (USD)", "255.00")
    with pytest.raises(EventRefused) as late_agent:
        await resolve(client, case_id, resolution("no_change", event_id="res-late"))
    assert late_agent.value.kind == "WithAccounting"

    await answer(client, case_id, resolution("refund", "30.00", by="acct-ana", event_id="acc-1"))

    outcome = await ended(client, case_id)
    assert outcome.status is CaseStatus.RESOLVED
    [paid] = refunds(shop, case_id)
    assert paid.amount == Decimal("30.00")
    lines = {line.event: line for line in audit(shop, case_id)}
    assert lines["dispute_escalated"].actor == "agent-amy"
    assert lines["accounting_answered"].actor == "acct-ana"
    assert lines["dispute_resolution_documented"].actor == "acct-ana"
    [note] = notes(shop, order_id)
    assert "acct-ana" in note.text


async def test_an_unanswered_escalation_reminds_accounting_then_the_cs_manager_on_business_hours(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop, settings: Settings
) -> None:
    await move_to(env, FRIDAY, 18)
    case_id = await reviewing(cases, client, dispute(disputed_order(shop)))
    await escalate(client, case_id)
    state = await dispute_state(client, case_id, lambda s: s.accounting_due_at is not None)
    [transferred] = [t for t in state.timeline if t.event == "transferred_to_accounting"]
    remind_at, escalate_at, due_at = policy.approval_deadlines(
        settings.case_rules(), transferred.at
    )
    # Business hours (08:00-20:00 weekdays): Friday's last two hours count, the weekend not.
    assert (remind_at.astimezone(EASTERN).weekday(), remind_at.astimezone(EASTERN).hour) == (
        MONDAY,
        10,
    )
    assert state.accounting_due_at == due_at
    assert due_at.astimezone(EASTERN).weekday() == WEDNESDAY

    await sleep_until(env, remind_at - timedelta(minutes=1))
    assert emails(shop, case_id, "billing_accounting_reminder") == []
    await env.sleep(timedelta(minutes=2))
    assert await eventually(lambda: addressed(shop, case_id, "billing_accounting_reminder")) == [
        ACCOUNTING
    ]
    assert emails(shop, case_id, "billing_accounting_escalated") == []

    await sleep_until(env, escalate_at - timedelta(minutes=1))
    assert emails(shop, case_id, "billing_accounting_escalated") == []
    await env.sleep(timedelta(minutes=2))
    assert await eventually(lambda: addressed(shop, case_id, "billing_accounting_escalated")) == [
        CS_MANAGER
    ]

    await sleep_until(env, due_at - timedelta(minutes=1))
    assert (await status_of(client, case_id, CaseStatus.WITH_ACCOUNTING)).accounting_escalated
    await env.sleep(timedelta(minutes=2))
    outcome = await ended(client, case_id)
    assert outcome.status is CaseStatus.NEEDS_ATTENTION
    assert "Accounting did not answer" in outcome.reason
    assert sorted(addressed(shop, case_id, "billing_accounting_unanswered")) == [
        ACCOUNTING,
        CS_MANAGER,
    ]
    assert refunds(shop, case_id) == []
    assert events(shop, case_id)[-2:] == ["accounting_unanswered", "case_needs_attention"]
