"""The report over cases the real worker ran (time-skipping server), not rows written by
hand: what the workflows leave in the database is what the report reads."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from settings import Settings
from starter import decide, start_case
from starter.report import ReportService
from tests.approval_helpers import awaiting_approval
from tests.case_helpers import events, eventually, timers_started
from tests.complaint_helpers import complaint, status_of
from tests.conftest import Cases, Shop
from tests.refund_helpers import refund
from workflows.models import CaseStatus, Decision, DecisionKind


async def test_cases_the_worker_ran_are_counted_with_their_decision_and_follow_up(
    env: WorkflowEnvironment,
    client: Client,
    worker: Worker,
    cases: Cases,
    shop: Shop,
    settings: Settings,
) -> None:
    # A refund over 500.00, approved by mgr-mia three hours after it was asked.
    approved = await cases.start(start_case, refund("750.00"))
    await awaiting_approval(client, approved)
    await env.sleep(timedelta(hours=3))
    await decide(
        client, approved.id, Decision(approver_id="mgr-mia", decision=DecisionKind.APPROVE)
    )
    await approved.result()
    # A VIP's complaint followed up at its 24 hours, then closed by a satisfied customer.
    vip = complaint("food_safety", order_id="ORD-2001", customer_id="C-200")
    followed = await cases.start(start_case, vip)
    await timers_started(followed)
    await env.sleep(timedelta(hours=24, minutes=1))
    await status_of(client, followed.id, CaseStatus.AWAITING_CUSTOMER)
    await followed.signal(
        "customer_response", {"event_id": "r-1", "satisfied": True, "recorded_by": "agent-amy"}
    )
    await followed.result()
    await eventually(lambda: [e for e in events(shop, followed.id) if e == "case_closed"])

    report = ReportService(shop.db, settings).build()

    figures = {p.procedure: p for p in report.procedures}
    assert (figures["refund"].opened, figures["refund"].outcomes) == (1, {"completed": 1})
    decision = figures["refund"].time_to_decision
    assert decision.count == 1 and decision.median_seconds is not None
    assert timedelta(hours=3) <= timedelta(seconds=decision.median_seconds) < timedelta(hours=4)
    assert figures["complaint"].outcomes == {"closed": 1}
    # Sent in the milliseconds after the 24 hours: on time (the grace, docs/reports.md).
    follow_ups = report.follow_ups
    assert (follow_ups.on_time, follow_ups.late, follow_ups.pending) == (1, 0, 0)
    assert [(r.procedure, r.reason, r.cases) for r in report.reasons] == [
        ("complaint", "food_safety", 1)
    ]
    assert [(v.case_id, v.procedure) for v in report.vip] == [(followed.id, "complaint")]
