"""ComplaintWorkflow (SOP Quality Complaints), specified against the time-skipping server."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from starter import start_case
from tests.complaint_helpers import (
    SATURDAY,
    TUESDAY,
    activities_in_order,
    complaint,
    emails,
    events,
    eventually,
    move_to,
)
from tests.conftest import Cases, Shop
from workflows.complaint_models import ComplaintRequest


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
    handle = await start(cases, complaint("food_safety"))
    await eventually(lambda: [e for e in events(shop, handle.id) if e == "complaint_acknowledged"])

    assert (await activities_in_order(handle))[:2] == ["open_case", "send_notice"]
    assert "emergency_line_paged" not in events(shop, handle.id)
    [escalation] = emails(shop, handle.id, "complaint_escalated")
    assert escalation.to_address == "qa@exoticmeats.com"
