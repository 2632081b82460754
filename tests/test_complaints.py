"""ComplaintWorkflow (SOP Quality Complaints), specified against the time-skipping server."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from starter import case_state, start_case
from tests.case_helpers import (
    FRIDAY,
    SATURDAY,
    TUESDAY,
    activities_in_order,
    audit,
    emails,
    events,
    eventually,
    move_to,
    timers_started,
)
from tests.complaint_helpers import complaint, state_when, status_of
from tests.conftest import Cases, Shop
from workflows import visibility
from workflows.complaint_models import ComplaintRequest, ComplaintState
from workflows.models import CaseStatus


async def start(cases: Cases, request: ComplaintRequest) -> WorkflowHandle[Any, Any]:
    return await cases.start(start_case, request)


async def test_medical_complaint_out_of_hours_escalates_and_pages_911_before_anything_else(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, SATURDAY, 10)
    handle = await start(cases, complaint("medical", "replacement"))
    await eventually(lambda: [e for e in events(shop, handle.id) if e == "replacement_placed"])

    activities = await activities_in_order(handle)
    assert activities[:4] == ["open_case", "send_notice", "send_notice", "send_notice"]
    assert events(shop, handle.id)[:5] == [
        "case_opened",
        "complaint_received",
        "complaint_escalated",
        "emergency_line_paged",
        "complaint_acknowledged",
    ]
    escalation = emails(shop, handle.id, "complaint_escalated")
    assert {e.to_address for e in escalation} == {
        "qa@exoticmeats.com",
        "csmanager@exoticmeats.com",
    }
    assert escalation[0].subject.startswith("URGENT: ")
    [page] = emails(shop, handle.id, "complaint_emergency_page")
    assert page.to_address == "emergency@exoticmeats.com"
    acknowledgement = emails(shop, handle.id, "complaint_received")
    assert {e.to_address for e in acknowledgement} == {
        "ada@example.com",
        "csmanager@exoticmeats.com",
    }


async def test_food_safety_complaint_in_hours_does_not_page_the_emergency_line(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    request = complaint("food_safety")
    handle = await start(cases, request)
    await eventually(lambda: [e for e in events(shop, handle.id) if e == "complaint_acknowledged"])

    assert (await activities_in_order(handle))[:2] == ["open_case", "send_notice"]
    assert "emergency_line_paged" not in events(shop, handle.id)
    [escalation] = emails(shop, handle.id, "complaint_escalated")
    assert escalation.to_address == "qa@exoticmeats.com"
    # Ops find every case of a lot (a recall) by its search attribute.
    description = await handle.describe()
    assert description.typed_search_attributes.get(visibility.LOT) == request.lot


# ---- step 4: the follow-up within 24 hours ------------------------------------------------


async def test_follow_up_of_a_friday_19_00_complaint_fires_at_24_hours_not_before(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    """The rule (docs/complaints.md): the customer hears from us 24 hours after the complaint,
    at whatever hour; the agent's follow-up task is due then, or at the next opening."""
    friday = await move_to(env, FRIDAY, 19)
    handle = await start(cases, complaint("quality"))
    state = await state_when(client, handle.id, lambda s: s.follow_up_at is not None)
    await timers_started(handle)
    assert state.follow_up_at is not None
    assert (
        timedelta(0) <= state.follow_up_at - (friday + timedelta(hours=24)) < timedelta(minutes=1)
    )

    await env.sleep(state.follow_up_at - await env.get_current_time() - timedelta(seconds=5))
    assert "follow_up_sent" not in events(shop, handle.id)
    assert (await case_state(client, handle.id)).status is CaseStatus.ESCALATED

    await env.sleep(timedelta(seconds=10))
    await eventually(lambda: [e for e in events(shop, handle.id) if e == "follow_up_sent"])
    lines = {line.event: line for line in audit(shop, handle.id)}
    assert abs(lines["follow_up_sent"].at - state.follow_up_at) < timedelta(seconds=1)
    monday_8 = (friday + timedelta(days=3)).replace(hour=8)
    assert datetime.fromisoformat(lines["follow_up_task"].detail["task_due"]) == monday_8
    assert "qa_reminded" in lines  # no findings had arrived
    [task] = emails(shop, handle.id, "complaint_follow_up_task")
    assert task.to_address == "agent-amy@exoticmeats.com"
    follow_up = emails(shop, handle.id, "complaint_follow_up")
    assert {e.to_address for e in follow_up} == {"ada@example.com", "csmanager@exoticmeats.com"}
    assert (await case_state(client, handle.id)).status is CaseStatus.AWAITING_CUSTOMER


async def test_follow_up_reminds_qa_only_when_findings_are_missing(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await start(cases, complaint("quality"))
    await timers_started(handle)
    await handle.signal(
        "qa_findings",
        {
            "event_id": "qa-1",
            "root_cause": "cold chain",
            "lot_affected": True,
            "reported_by": "qa-quinn",
        },
    )
    await eventually(lambda: [e for e in events(shop, handle.id) if e == "qa_findings"])

    await env.sleep(timedelta(hours=24, minutes=1))
    await eventually(lambda: [e for e in events(shop, handle.id) if e == "follow_up_sent"])
    assert "qa_reminded" not in events(shop, handle.id)
    assert emails(shop, handle.id, "complaint_qa_reminder") == []
    assert (await case_state(client, handle.id, ComplaintState)).qa_root_cause == "cold chain"


# ---- step 5: confirming satisfaction --------------------------------------------------------


async def awaiting_customer(
    env: WorkflowEnvironment, client: Client, cases: Cases, request: ComplaintRequest
) -> WorkflowHandle[Any, Any]:
    handle = await start(cases, request)
    await timers_started(handle)
    await env.sleep(timedelta(hours=24, minutes=1))
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    return handle


async def test_a_satisfied_customer_closes_the_case(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await awaiting_customer(env, client, cases, complaint())
    await handle.signal(
        "customer_response", {"event_id": "r-1", "satisfied": True, "recorded_by": "agent-amy"}
    )

    outcome = await handle.result()
    assert outcome.status is CaseStatus.CLOSED
    assert "customer_satisfied" in events(shop, handle.id)
    closed = emails(shop, handle.id, "complaint_closed")
    assert {e.to_address for e in closed} == {"ada@example.com", "csmanager@exoticmeats.com"}


async def test_no_answer_within_three_business_days_closes_it_without_response(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await awaiting_customer(env, client, cases, complaint())
    followed_up_at = (await case_state(client, handle.id, ComplaintState)).timeline[-1].at

    outcome = await handle.result()

    assert outcome.status is CaseStatus.CLOSED_NO_RESPONSE
    closed = {line.event: line for line in audit(shop, handle.id)}["case_closed_no_response"]
    calendar = Settings().calendar
    assert abs(closed.at - calendar.add_business_days(followed_up_at, 3)) < timedelta(seconds=1)


async def test_a_customer_not_satisfied_goes_to_a_supervisor_then_is_followed_up(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    handle = await awaiting_customer(env, client, cases, complaint())
    await handle.signal(
        "customer_response",
        {
            "event_id": "r-1",
            "satisfied": False,
            "comment": "still no refund",
            "recorded_by": "agent-amy",
        },
    )
    await status_of(client, handle.id, CaseStatus.ESCALATED)
    briefings = await eventually(lambda: emails(shop, handle.id, "complaint_supervisor_briefing"))
    # Every supervisor in the directory is briefed, with the reason the customer gave.
    assert {b.to_address for b in briefings} == {
        "sup-sam@exoticmeats.com",
        "sup-low@exoticmeats.com",
    }
    assert all("still no refund" in b.body for b in briefings)

    await handle.signal(
        "supervisor_action", {"event_id": "s-1", "action": "sent a voucher", "taken_by": "sup-sam"}
    )
    await status_of(client, handle.id, CaseStatus.AWAITING_CUSTOMER)
    [follow_up] = await eventually(
        lambda: [
            e
            for e in emails(shop, handle.id, "complaint_supervisor_follow_up")
            if e.to_address == "ada@example.com"
        ]
    )
    assert "sent a voucher" in follow_up.body
    await handle.signal(
        "customer_response", {"event_id": "r-2", "satisfied": True, "recorded_by": "agent-amy"}
    )
    assert (await handle.result()).status is CaseStatus.CLOSED
    trail = events(shop, handle.id)
    assert trail.index("customer_not_satisfied") < trail.index("supervisor_escalation")
    assert trail.index("supervisor_escalation") < trail.index("supervisor_action")
    assert trail.index("supervisor_action") < trail.index("customer_satisfied")
    action = {line.event: line for line in audit(shop, handle.id)}["supervisor_action"]
    assert action.actor == "sup-sam"
