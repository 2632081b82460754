"""A case never fails silently: any unexpected failure ends it ``needs_attention``.

Whatever breaks (an activity failing for good, an activity out of retries, a bug in workflow
code, a template that cannot be filled), the case ends ``needs_attention``: the database copy
and the audit trail say where and why, and the CS manager plus the department that owns the
failing step are emailed through the outbox. Every procedure inherits this from
``CaseWorkflow``; the procedures in ``tests/failing_workflows.py`` add nothing of their own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from string import Template
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities import notifications
from activities.carrier import LocalCarrier
from activities.cases import CaseActivities
from activities.orders import LocalOrderSystem
from activities.payments import LocalPaymentGateway, PaymentGateway, PaymentUnavailable
from infra.db import AuditRecord, Case, LedgerEntry, OutboxEmail
from settings import Settings
from starter import DATA_CONVERTER, start_refund, start_return
from tests.activity_helpers import open_case, refund_opening
from tests.conftest import Cases, Shop
from tests.failing_workflows import PaysWithTwoAttempts, ReadsAMissingFact
from tests.return_helpers import delivered_order, return_of
from worker import WORKFLOWS
from workflows.models import (
    AuditEntry,
    CaseStatus,
    Escalation,
    Notice,
    Outcome,
    Recipient,
    RefundInstruction,
    RefundRequest,
)
from workflows.refund import RefundWorkflow
from workflows.rush_models import FeeCharge
from workflows.sandbox import workflow_runner

CS_MANAGER = "csmanager@exoticmeats.com"
ACCOUNTING = "accounting@exoticmeats.com"
IT_SUPPORT = "techsupport@exoticmeats.com"


def refund(amount: str = "100.00") -> RefundRequest:
    return RefundRequest.model_validate(
        {
            "request_id": f"req-{uuid.uuid4().hex[:10]}",
            "order_id": "ORD-1001",
            "customer_id": "C-100",
            "amount": Decimal(amount),
            "reason": "thawed on arrival",
            "requested_by": "agent-amy",
        }
    )


class GatewayDown:
    """A payment gateway that cannot be reached."""

    def refund(self, instruction: RefundInstruction) -> str:
        raise PaymentUnavailable("connection refused by the gateway")

    def charge(self, charge: FeeCharge) -> str:
        raise PaymentUnavailable("connection refused by the gateway")


class GatewayRejectsTheFormat:
    """A gateway answering a protocol error nobody planned for, marked final by its adapter."""

    def refund(self, instruction: RefundInstruction) -> str:
        raise self._refusal()

    def charge(self, charge: FeeCharge) -> str:
        raise self._refusal()

    @staticmethod
    def _refusal() -> ApplicationError:
        return ApplicationError(
            "gateway answered 400: unknown field 'method'",
            type="GatewayProtocolError",
            non_retryable=True,
        )


@pytest.fixture
def edit_template(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """Replace one template's text, as a bad deploy of the templates folder would."""
    original = notifications._template

    def edit(name: str, text: str) -> None:
        subject, _, body = text.partition("\n")

        def edited(wanted: str) -> tuple[Template, Template]:
            if wanted == name:
                return Template(subject.removeprefix("Subject: ")), Template(body)
            return original(wanted)

        monkeypatch.setattr(notifications, "_template", edited)

    return edit


@pytest.fixture
async def running(
    env: WorkflowEnvironment, shop: Shop, settings: Settings
) -> AsyncIterator[Callable[..., Any]]:
    """Run the worker (every procedure and the test ones) with a chosen payment gateway."""

    @asynccontextmanager
    async def run(payments: PaymentGateway | None = None) -> AsyncIterator[Cases]:
        activities = CaseActivities(
            shop.db,
            orders=LocalOrderSystem(shop.db),
            payments=payments or LocalPaymentGateway(shop.db),
            carrier=LocalCarrier(shop.db),
            settings=settings,
        )
        async with Worker(
            env.client,
            task_queue=settings.task_queue,
            workflows=[*WORKFLOWS, ReadsAMissingFact, PaysWithTwoAttempts],
            workflow_runner=workflow_runner(),
            activities=activities.all(),
            activity_executor=ThreadPoolExecutor(max_workers=4),
        ):
            cases = Cases(env.client, settings.task_queue)
            try:
                yield cases
            finally:
                await cases.close_all()

    yield run


async def start_test_procedure(
    cases: Cases, workflow: Any, request: RefundRequest
) -> WorkflowHandle[Any, Any]:
    handle: WorkflowHandle[Any, Any] = await cases.client.start_workflow(
        workflow.run,
        request,
        id=f"refund-{request.request_id}",
        task_queue=cases.task_queue,
    )
    cases.handles.append(handle)
    return handle


async def outcome_of(handle: WorkflowHandle[Any, Any]) -> Outcome:
    # Today a fault either fails the workflow or retries forever: never wait forever for it.
    outcome: Outcome = await asyncio.wait_for(handle.result(), timeout=30)
    return outcome


def case_row(shop: Shop, case_id: str) -> tuple[str, str]:
    with shop.db.transaction() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case.status, case.step


def audit(shop: Shop, case_id: str) -> list[AuditRecord]:
    with shop.db.transaction() as session:
        return list(
            session.scalars(
                select(AuditRecord).where(AuditRecord.case_id == case_id).order_by(AuditRecord.seq)
            )
        )


def alerts(shop: Shop, case_id: str) -> list[OutboxEmail]:
    with shop.db.transaction() as session:
        return list(
            session.scalars(
                select(OutboxEmail)
                .where(
                    OutboxEmail.case_id == case_id, OutboxEmail.template == "case_needs_attention"
                )
                .order_by(OutboxEmail.id)
            )
        )


def assert_needs_attention(
    shop: Shop, case_id: str, *, failed_step: str, why: str, told: set[str]
) -> AuditRecord:
    """The database copy, the audit trail and the outbox all say the case needs a person."""
    status, step = case_row(shop, case_id)
    assert status == "needs_attention"
    assert step.startswith("Needs attention: ") and why in step
    last = audit(shop, case_id)[-1]
    assert last.event == "case_needs_attention"
    assert last.detail["failed_step"] == failed_step
    assert why in last.detail["reason"]
    emails = alerts(shop, case_id)
    assert {e.to_address for e in emails} == told
    for email in emails:
        assert case_id in email.subject
        assert why in email.body and failed_step in email.body
    return last


# ---- activities that fail for good -------------------------------------------------------------


async def test_a_payment_failing_for_an_unplanned_reason_ends_the_refund_needs_attention(
    running: Callable[..., Any], shop: Shop
) -> None:
    async with running(GatewayRejectsTheFormat()) as cases:
        handle = await cases.start(start_refund, refund())
        outcome = await outcome_of(handle)

    assert outcome.status is CaseStatus.NEEDS_ATTENTION
    assert "unknown field 'method'" in outcome.reason
    line = assert_needs_attention(
        shop,
        handle.id,
        failed_step="Issuing 100.00 as original payment",
        why="unknown field 'method'",
        told={CS_MANAGER, ACCOUNTING},  # paying money back is Accounting's
    )
    assert line.detail["activity"] == "issue_refund"
    assert line.detail["error_type"] == "GatewayProtocolError"
    with shop.db.transaction() as session:
        assert list(session.scalars(select(LedgerEntry))) == []


async def test_a_payment_out_of_retries_ends_the_case_needs_attention(
    running: Callable[..., Any], shop: Shop
) -> None:
    async with running(GatewayDown()) as cases:
        handle = await start_test_procedure(cases, PaysWithTwoAttempts, refund())
        outcome = await outcome_of(handle)

    assert outcome.status is CaseStatus.NEEDS_ATTENTION
    line = assert_needs_attention(
        shop,
        handle.id,
        failed_step="Paying",
        why="connection refused by the gateway",
        told={CS_MANAGER, ACCOUNTING},
    )
    assert "retries" in line.detail["reason"]


# ---- programming errors ------------------------------------------------------------------------


async def test_a_bug_in_workflow_code_ends_the_case_needs_attention_and_tells_it(
    running: Callable[..., Any], shop: Shop
) -> None:
    async with running() as cases:
        handle = await start_test_procedure(cases, ReadsAMissingFact, refund())
        outcome = await outcome_of(handle)

    assert outcome.status is CaseStatus.NEEDS_ATTENTION
    line = assert_needs_attention(
        shop,
        handle.id,
        failed_step="Verifying the order",
        why="KeyError: 'verdict'",
        told={CS_MANAGER, IT_SUPPORT},
    )
    assert line.detail["error_type"] == "KeyError"


async def test_a_confirmation_that_cannot_be_rendered_ends_the_refund_needs_attention(
    running: Callable[..., Any], shop: Shop, edit_template: Callable[[str, str], None]
) -> None:
    edit_template("refund_confirmed", "Subject: Refunded\nDear $customer_nickname, ...")
    async with running() as cases:
        handle = await cases.start(start_refund, refund())
        outcome = await outcome_of(handle)

    assert outcome.status is CaseStatus.NEEDS_ATTENTION
    line = assert_needs_attention(
        shop,
        handle.id,
        failed_step="Issuing 100.00 as original payment",
        why="customer_nickname",
        told={CS_MANAGER, IT_SUPPORT},
    )
    assert line.detail["activity"] == "send_notice"
    assert line.detail["error_type"] == "ProgrammingError"
    with shop.db.transaction() as session:  # the money went out; a person confirms by hand
        [paid] = session.scalars(select(LedgerEntry))
        assert paid.amount == Decimal("100.00")

    # The failure path is deterministic: its history replays.
    replayer = Replayer(
        workflows=[RefundWorkflow], data_converter=DATA_CONVERTER, workflow_runner=workflow_runner()
    )
    result = await replayer.replay_workflow(await handle.fetch_history())
    assert result.replay_failure is None


async def test_a_return_inherits_the_same_ending(
    env: WorkflowEnvironment,
    running: Callable[..., Any],
    shop: Shop,
    edit_template: Callable[[str, str], None],
) -> None:
    edit_template("return_instructions", "Subject: Your RA\nShip it to $warehouse_dock")
    order_id = await delivered_order(env, shop)
    async with running() as cases:
        handle = await cases.start(start_return, return_of(order_id))
        outcome = await outcome_of(handle)

    assert outcome.status is CaseStatus.NEEDS_ATTENTION
    assert_needs_attention(
        shop,
        handle.id,
        failed_step="Verifying eligibility",
        why="warehouse_dock",
        told={CS_MANAGER, IT_SUPPORT},
    )


# ---- the template error itself, as the activity raises it -------------------------------------


def test_a_missing_template_fact_is_a_non_retryable_programming_error(
    shop: Shop, activities: CaseActivities, edit_template: Callable[[str, str], None]
) -> None:
    open_case(activities, "refund-template")
    edit_template("refund_confirmed", "Subject: Refunded\nDear $customer_nickname")
    notice = Notice(
        entry=AuditEntry(
            case_id="refund-template",
            seq=1,
            at=datetime.now(UTC),
            event="email_refund_confirmed",
            actor="system",
        ),
        template="refund_confirmed",
        recipient=Recipient.CUSTOMER,
        context={"case_id": "refund-template"},
    )
    with pytest.raises(ApplicationError) as raised:
        activities.send_notice(notice)
    assert raised.value.non_retryable
    assert raised.value.type == "ProgrammingError"
    assert "refund_confirmed" in raised.value.message
    assert "customer_nickname" in raised.value.message
    assert audit(shop, "refund-template") == []  # nothing half-written


# ---- the recording activity, on both databases -------------------------------------------------


def escalation(case_id: str, seq: int, *, department: str | None) -> Escalation:
    return Escalation(
        entry=AuditEntry(
            case_id=case_id,
            seq=seq,
            at=datetime.now(UTC),
            event="case_needs_attention",
            actor="system",
            detail={"reason": "issue_refund failed: boom", "failed_step": "Paying"},
            status=CaseStatus.NEEDS_ATTENTION,
            step="Needs attention: issue_refund failed: boom",
        ),
        department=department,
        context={
            "case_id": case_id,
            "case_type": "refund",
            "order_id": "ORD-1001",
            "amount": "120.00",
            "currency": "USD",
            "reason": "issue_refund failed: boom",
            "failed_step": "Paying",
        },
        opening=refund_opening(case_id),
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_recording_needs_attention_twice_writes_it_once(
    shop: Shop, activities: CaseActivities
) -> None:
    open_case(activities, "refund-twice")
    activities.record_needs_attention(escalation("refund-twice", 2, department="accounting"))
    activities.record_needs_attention(escalation("refund-twice", 2, department="accounting"))
    assert case_row(shop, "refund-twice")[0] == "needs_attention"
    assert [line.event for line in audit(shop, "refund-twice")] == ["case_needs_attention"]
    assert {e.to_address for e in alerts(shop, "refund-twice")} == {CS_MANAGER, ACCOUNTING}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_case_whose_row_was_never_written_still_ends_needs_attention(
    shop: Shop, activities: CaseActivities
) -> None:
    activities.record_needs_attention(escalation("refund-unopened", 1, department="no-such"))
    status, step = case_row(shop, "refund-unopened")
    assert (status, step) == ("needs_attention", "Needs attention: issue_refund failed: boom")
    # An unknown department never stops the alert: the CS manager still gets it.
    assert {e.to_address for e in alerts(shop, "refund-unopened")} == {CS_MANAGER}
