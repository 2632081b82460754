"""The approval gate, through RefundWorkflow on the time-skipping server and the real worker.

Timers are business-hour deadlines the workflow computes from its own clock; the tests read
those deadlines from the case, check them against the calendar, then move the server's clock
to just before and just after each one with ``env.sleep`` and look at the outbox.

Some specifications need the case to be busy paying while a message arrives (a duplicate
signal, a late store-credit choice): ``HeldGateway`` is a real payment gateway that waits
for the test to let it pay.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.carrier import LocalCarrier
from activities.cases import CaseActivities
from activities.orders import LocalOrderSystem
from activities.payments import LocalPaymentGateway, PaymentUnavailable
from activities.staff import StaffDirectory
from infra.db import Case, OutboxEmail
from settings import Settings
from starter import DecisionRefused, case_state, choose_store_credit, decide
from tests.approval_helpers import awaiting_approval, code_for
from tests.case_helpers import audit, sleep_until, until
from tests.conftest import Cases, Shop
from tests.refund_helpers import payments, refund
from worker import build_activities, build_worker
from workflows.models import (
    ApprovalState,
    ApprovalStatus,
    CaseStatus,
    Decision,
    DecisionKind,
    Outcome,
    RefundInstruction,
    RefundMethod,
    StoreCreditChoice,
)
from workflows.rush_models import FeeCharge

APPROVERS_OF_750 = {"sup-sam", "mgr-mia", "mgr-max"}


def emails(shop: Shop, template: str) -> list[str]:
    with shop.db.transaction() as session:
        return list(
            session.scalars(
                select(OutboxEmail.to_address)
                .where(OutboxEmail.template == template)
                .order_by(OutboxEmail.to_address)
            )
        )


def bodies(shop: Shop, template: str) -> list[str]:
    with shop.db.transaction() as session:
        return list(
            session.scalars(select(OutboxEmail.body).where(OutboxEmail.template == template))
        )


def staff_emails(ids: set[str] | tuple[str, ...]) -> list[str]:
    return sorted(f"{i}@exoticmeats.com" for i in ids)


# ---- timers ----------------------------------------------------------------------------------


async def test_approvers_are_reminded_after_four_business_hours_and_not_before(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop, settings: Settings
) -> None:
    handle = await cases.refund(refund("750.00"))
    approval = await awaiting_approval(client, handle)
    calendar = settings.calendar
    assert approval.remind_at == calendar.add_business_time(
        approval.requested_at, timedelta(hours=4)
    )
    await until(lambda: emails(shop, "approval_requested"), "the approval request email")

    await sleep_until(env, approval.remind_at - timedelta(minutes=1))
    assert emails(shop, "approval_reminder") == []

    await sleep_until(env, approval.remind_at + timedelta(minutes=1))
    reminded = await until(lambda: emails(shop, "approval_reminder"), "the reminder")
    assert reminded == staff_emails(APPROVERS_OF_750)
    assert emails(shop, "approval_escalated") == []
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.AWAITING_APPROVAL
    assert state.approval is not None and state.approval.reminded


async def test_the_cs_manager_is_told_after_eight_business_hours_and_not_before(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop, settings: Settings
) -> None:
    handle = await cases.refund(refund("750.00"))
    approval = await awaiting_approval(client, handle)
    assert approval.escalate_at == settings.calendar.add_business_time(
        approval.requested_at, timedelta(hours=8)
    )

    await sleep_until(env, approval.escalate_at - timedelta(minutes=1))
    await until(lambda: emails(shop, "approval_reminder"), "the reminder")
    assert emails(shop, "approval_escalated") == []

    await sleep_until(env, approval.escalate_at + timedelta(minutes=1))
    escalated = await until(lambda: emails(shop, "approval_escalated"), "the escalation")
    assert escalated == ["csmanager@exoticmeats.com"]
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.AWAITING_APPROVAL
    assert state.approval is not None and state.approval.escalated


async def test_an_unanswered_request_expires_after_three_business_days_and_the_customer_is_told(
    client: Client, cases: Cases, shop: Shop, settings: Settings
) -> None:
    handle = await cases.refund(refund("750.00"))
    approval = await awaiting_approval(client, handle)
    assert approval.due_at == settings.calendar.add_business_days(approval.requested_at, 3)

    outcome: Outcome = await handle.result()  # the server skips through the timers

    assert outcome.status is CaseStatus.EXPIRED
    assert outcome.reason == "manager authorization was not given in time"
    closed = (await handle.describe()).close_time
    assert closed is not None and closed >= approval.due_at
    assert emails(shop, "refund_expired") == ["ada@example.com"]
    assert [r.event for r in audit(shop, handle.id, "approval_expired")] == ["approval_expired"]
    assert payments(shop) == []


# ---- decisions as signals ---------------------------------------------------------------------


def decision(approver: str, verdict: str = "approve", **more: str) -> dict[str, str]:
    return {
        "approver_id": approver,
        "decision": verdict,
        "event_id": f"evt-{uuid.uuid4().hex[:8]}",
        **more,
    }


async def test_a_decision_sent_as_a_signal_approves(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)

    code = await code_for(shop, "mgr-mia")
    await handle.signal("decision", decision("mgr-mia", note="good customer", code=code))
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.COMPLETED
    state = await case_state(client, handle.id)
    assert state.approval is not None
    assert (state.approval.status, state.approval.decided_by, state.approval.note) == (
        ApprovalStatus.APPROVED,
        "mgr-mia",
        "good customer",
    )
    [approved] = audit(shop, handle.id, "approval_approved")
    assert approved.actor == "mgr-mia"
    assert payments(shop) == [(handle.id, "original_payment", Decimal("750.00"))]


@pytest.mark.parametrize(
    ("approver", "reason"),
    [
        ("mgr-ghost", "unknown approver 'mgr-ghost'"),
        ("sup-low", "sup-low's approval limit 600.00 is below 750.00"),
        ("agent-amy", "agent-amy requested this case and cannot decide it"),
        ("backend", "backend has role 'backend', which may not approve"),
    ],
)
async def test_a_signal_from_someone_without_authority_is_recorded_and_the_case_keeps_waiting(
    client: Client, cases: Cases, shop: Shop, approver: str, reason: str
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)

    await handle.signal("decision", decision(approver, code="AAAA-BBBB-CCCC"))

    [ignored] = await until(
        lambda: audit(shop, handle.id, "decision_ignored"), "the ignored decision"
    )
    assert (ignored.actor, ignored.detail) == (approver, {"reason": reason, "decision": "approve"})
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.AWAITING_APPROVAL
    assert state.approval is not None and state.approval.status is ApprovalStatus.PENDING
    assert payments(shop) == []

    # Still open to a decision from someone who may take it.
    await handle.signal("decision", decision("mgr-mia", code=await code_for(shop, "mgr-mia")))
    assert (await handle.result()).status is CaseStatus.COMPLETED


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        ({"approver_id": "mgr-mia", "decision": "maybe", "event_id": "e1"}, "decision:"),
        ({"decision": "approve", "event_id": "e2"}, "approver_id: Field required"),
        ({"approver_id": "mgr mia", "decision": "approve", "event_id": "e3"}, "approver_id:"),
    ],
)
async def test_a_malformed_decision_signal_is_recorded_and_ignored(
    client: Client, cases: Cases, shop: Shop, payload: dict[str, str], complaint: str
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)

    await handle.signal("decision", payload)

    [ignored] = await until(
        lambda: audit(shop, handle.id, "decision_ignored"), "the ignored decision"
    )
    assert ignored.detail["reason"].startswith("invalid: ")
    assert complaint in ignored.detail["reason"]
    state = await case_state(client, handle.id)
    assert state.status is CaseStatus.AWAITING_APPROVAL
    assert state.approval is not None and state.approval.status is ApprovalStatus.PENDING


async def test_a_decision_signal_without_an_event_id_is_recorded_and_ignored(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)

    await handle.signal("decision", {"approver_id": "mgr-mia", "decision": "approve"})

    [ignored] = await until(
        lambda: audit(shop, handle.id, "decision_ignored"), "the ignored decision"
    )
    assert ignored.actor == "mgr-mia"
    state = await case_state(client, handle.id)
    assert state.approval is not None and state.approval.status is ApprovalStatus.PENDING


# ---- a case busy paying while a message arrives -----------------------------------------------


@dataclass
class HeldGateway:
    """Pays through the local gateway once the test lets it (``release``)."""

    inner: LocalPaymentGateway
    paying: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def refund(self, instruction: RefundInstruction) -> str:
        self.paying.set()
        if not self.release.wait(timeout=20):
            raise PaymentUnavailable("held by the test for too long")
        return self.inner.refund(instruction)

    def charge(self, charge: FeeCharge) -> str:
        return self.inner.charge(charge)

    async def wait_until_paying(self) -> None:
        assert await asyncio.to_thread(self.paying.wait, 10), "the case never started paying"


@dataclass
class Held:
    cases: Cases
    gateway: HeldGateway


@pytest.fixture
async def held(env: WorkflowEnvironment, shop: Shop, settings: Settings) -> AsyncIterator[Held]:
    gateway = HeldGateway(LocalPaymentGateway(shop.db))
    activities = CaseActivities(
        shop.db,
        orders=LocalOrderSystem(shop.db),
        payments=gateway,
        carrier=LocalCarrier(shop.db),
        settings=settings,
    )
    async with build_worker(env.client, activities=activities, settings=settings):
        world = Held(Cases(env.client, settings.task_queue), gateway)
        try:
            yield world
        finally:
            gateway.release.set()
            await world.cases.close_all()


def signals_in_history(events: list[Any], name: str) -> int:
    return sum(
        1
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and e.workflow_execution_signaled_event_attributes.signal_name == name
    )


async def test_the_same_decision_signal_delivered_twice_acts_once(held: Held, shop: Shop) -> None:
    client = held.cases.client
    handle = await held.cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)
    approve = decision("mgr-mia", code=await code_for(shop, "mgr-mia"))

    await handle.signal("decision", approve)
    await held.gateway.wait_until_paying()
    await handle.signal("decision", approve)  # a sender's retry, while the case is still open
    # A query sees every signal delivered before it: the repeat has been handled by now.
    timeline = [e.event for e in (await case_state(client, handle.id)).timeline]
    held.gateway.release.set()
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.COMPLETED
    assert "decision_ignored" not in timeline
    assert [
        r.event for r in audit(shop, handle.id) if r.event.startswith(("approval_", "decision"))
    ] == ["approval_approved"]
    history = await handle.fetch_history()
    assert signals_in_history(list(history.events), "decision") == 2
    assert payments(shop) == [(handle.id, "original_payment", Decimal("750.00"))]


async def test_a_decision_update_retried_with_the_same_event_id_gets_the_same_answer(
    held: Held, shop: Shop
) -> None:
    client = held.cases.client
    handle = await held.cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)
    approve = Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE, event_id="evt-42")

    first = await decide(client, handle.id, approve)
    await held.gateway.wait_until_paying()
    # The same decision again: once as the same update, once as a new update (new update id).
    again = await decide(client, handle.id, approve)
    retried: ApprovalState = await handle.execute_update(
        "decide", approve, id="evt-42-retry", result_type=ApprovalState
    )
    held.gateway.release.set()
    await handle.result()

    assert first.status is ApprovalStatus.APPROVED and first.decided_by == "mgr-mia"
    assert again == first
    assert retried == first
    assert [r.event for r in audit(shop, handle.id, "approval_approved")] == ["approval_approved"]
    assert audit(shop, handle.id, "decision_ignored") == []
    assert payments(shop) == [(handle.id, "original_payment", Decimal("750.00"))]


async def test_a_store_credit_choice_after_the_refund_started_is_recorded_as_ignored(
    held: Held, shop: Shop
) -> None:
    client = held.cases.client
    handle = await held.cases.refund(refund("120.00"))
    await held.gateway.wait_until_paying()

    await choose_store_credit(client, handle.id, StoreCreditChoice(event_id="late-choice"))
    await until(
        lambda: audit(shop, handle.id, "store_credit_ignored"), "the ignored store-credit choice"
    )
    held.gateway.release.set()
    outcome: Outcome = await handle.result()

    assert outcome.method is RefundMethod.ORIGINAL_PAYMENT
    [ignored] = audit(shop, handle.id, "store_credit_ignored")
    assert ignored.detail == {"reason": "the refund was already issued"}
    assert audit(shop, handle.id, "store_credit_chosen") == []
    assert payments(shop) == [(handle.id, "original_payment", Decimal("120.00"))]
    [body] = bodies(shop, "refund_confirmed")
    assert "original payment" in body and "5-10 business days" in body


# ---- delegation ------------------------------------------------------------------------------


async def away_manager_names_a_delegate(env: WorkflowEnvironment, shop: Shop) -> None:
    """mgr-max is away for a month from the server's now; agent-dee (limit 800) stands in."""
    directory = StaffDirectory(shop.db)
    directory.add(
        staff_id="agent-dee",
        name="Dee",
        email="agent-dee@exoticmeats.com",
        role="agent",
        approval_limit=Decimal("800.00"),
    )
    now = await env.get_current_time()
    directory.delegate("mgr-max", "agent-dee", now - timedelta(days=1), now + timedelta(days=30))


async def test_a_delegate_of_an_away_manager_approves_within_the_delegates_limit(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await away_manager_names_a_delegate(env, shop)
    handle = await cases.refund(refund("750.00"))
    approval = await awaiting_approval(client, handle)
    assert "agent-dee" in approval.eligible_approvers
    await until(lambda: emails(shop, "approval_requested"), "the approval request email")
    assert "agent-dee@exoticmeats.com" in emails(shop, "approval_requested")

    approved = await decide(
        client, handle.id, Decision(approver_id="agent-dee", decision=DecisionKind.APPROVE)
    )
    outcome: Outcome = await handle.result()

    assert approved.decided_by == "agent-dee"
    assert outcome.status is CaseStatus.COMPLETED
    assert payments(shop) == [(handle.id, "original_payment", Decimal("750.00"))]


async def test_a_delegate_may_not_approve_above_the_delegates_own_limit(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await away_manager_names_a_delegate(env, shop)
    handle = await cases.refund(refund("900.00"))
    approval = await awaiting_approval(client, handle)
    assert "agent-dee" not in approval.eligible_approvers

    with pytest.raises(DecisionRefused) as refused:
        await decide(
            client, handle.id, Decision(approver_id="agent-dee", decision=DecisionKind.APPROVE)
        )

    assert refused.value.kind == "NotAuthorized"
    assert refused.value.message == "agent-dee's approval limit 800.00 is below 900.00"
    assert (await case_state(client, handle.id)).status is CaseStatus.AWAITING_APPROVAL


# ---- the rules a case opened with --------------------------------------------------------------


async def test_an_open_case_keeps_its_rules_when_the_settings_change(
    dev_env: WorkflowEnvironment, shop: Shop, settings: Settings
) -> None:
    """A worker restart, on the dev server: the time-skipping server never hands a stopped
    worker's cached cases to a new worker."""
    client = dev_env.client
    shop.add_order("ORD-3001", "800.00")
    relaxed = settings.model_copy(update={"refund_approval_above": Decimal("1000.00")})
    tracker = Cases(client, settings.task_queue)
    try:
        # Opened under the 500.00 threshold: it waits for a manager.
        async with build_worker(
            client, activities=build_activities(shop.db, settings), settings=settings
        ):
            before = await tracker.refund(refund("750.00"))
            await awaiting_approval(client, before)

        # The threshold is raised; the worker restarts with the new settings.
        async with build_worker(
            client, activities=build_activities(shop.db, relaxed), settings=relaxed
        ):
            after = await tracker.refund(refund("750.00", order_id="ORD-3001"))
            assert (await after.result()).status is CaseStatus.COMPLETED
            assert (await case_state(client, after.id)).approval is None

            state = await case_state(client, before.id)
            assert state.status is CaseStatus.AWAITING_APPROVAL
            approved = await decide(
                client, before.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE)
            )
            assert approved.status is ApprovalStatus.APPROVED
            assert (await before.result()).status is CaseStatus.COMPLETED
    finally:
        await tracker.close_all()

    with shop.db.transaction() as session:
        rules = {
            case.id: case.rules["refund_approval_above"]
            for case in session.scalars(select(Case).where(Case.id.in_([before.id, after.id])))
        }
    assert rules == {before.id: "500.00", after.id: "1000.00"}


async def test_two_managers_deciding_at_the_same_instant_settle_it_once(
    client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await cases.refund(refund("750.00"))
    await awaiting_approval(client, handle)
    approve = Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE, event_id="evt-a")
    reject = Decision(approver_id="mgr-max", decision=DecisionKind.REJECT, event_id="evt-r")

    answers = await asyncio.gather(
        decide(client, handle.id, approve),
        decide(client, handle.id, reject),
        return_exceptions=True,
    )
    await handle.result()

    accepted = [a for a in answers if isinstance(a, ApprovalState)]
    refused = [a for a in answers if isinstance(a, DecisionRefused)]
    assert (len(accepted), len(refused)) == (1, 1), answers
    final = (await case_state(client, handle.id)).approval
    assert final is not None and final.decided_by == accepted[0].decided_by
    decided = audit(shop, handle.id, "approval_approved") + audit(
        shop, handle.id, "approval_rejected"
    )
    assert [r.actor for r in decided] == [accepted[0].decided_by]
