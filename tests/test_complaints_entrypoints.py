"""Opening complaints and sending their events over HTTP, CloudEvents and the CLI.

All of it derives from the registry entry; these specifications pin the complaint's own
contract: bad input refused with 422 and nothing started, roles checked, the actor the caller.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from infra.db import ApiRequest
from settings import Settings
from starter import case_exists
from tests.case_helpers import audit, eventually, timers_started
from tests.complaint_helpers import status_of
from tests.conftest import Cases, Shop
from workflows.models import CaseStatus

BASE_URL = "http://casework.test"


def body(**fields: Any) -> dict[str, Any]:
    return {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": "ORD-1001",
        "customer_id": "C-100",
        "category": "quality",
        "description": "the jerky was mouldy",
        "sku": "ELK-JERKY",
        "lot": "LOT-77",
        "photos": ["https://photos.example.com/a.jpg"],
        "requested_resolution": "none",
        "requested_by": "agent-amy",
        **fields,
    }


def api_requests(shop: Shop) -> list[ApiRequest]:
    with shop.db.transaction() as session:
        return list(session.scalars(select(ApiRequest)))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"category": "taste"}, "category"),
        ({"requested_resolution": "refund"}, "amount"),
        ({"photos": [f"https://photos.example.com/{n}.jpg" for n in range(11)]}, "photos"),
        ({"photos": ["not a url"]}, "photos"),
        ({"photos": ["ftp://photos.example.com/a.jpg"]}, "photos"),
    ],
    ids=["unknown-category", "refund-without-amount", "11-photos", "non-url", "ftp-url"],
)
async def test_bad_complaints_are_422_and_start_nothing(
    http: httpx.AsyncClient, client: Client, shop: Shop, fields: dict[str, Any], field: str
) -> None:
    complaint = body(**fields)
    response = await http.post("/v1/complaints", json=complaint, headers=shop.auth("backend"))

    assert response.status_code == 422, response.text
    assert field in response.text
    assert api_requests(shop) == []
    assert not await case_exists(client, f"complaint-{complaint['request_id']}")


async def test_a_complaint_opened_over_http_is_the_same_case_when_sent_twice(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    complaint = body()
    first = await http.post("/v1/complaints", json=complaint, headers=shop.auth("backend"))
    again = await http.post("/v1/complaints", json=complaint, headers=shop.auth("backend"))

    assert first.status_code == 202, first.text
    case_id = first.json()["case_id"]
    cases.handles.append(client.get_workflow_handle(case_id))
    cases.watch("LOT-77")
    assert case_id == f"complaint-{complaint['request_id']}"
    assert again.json()["case_id"] == case_id
    await status_of(client, case_id, CaseStatus.ESCALATED)


async def test_a_complaint_received_cloud_event_opens_a_case(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    event = {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex[:10]}",
        "source": "/shop/complaints",
        "type": "complaint.received",
        "data": body(category="food_safety"),
    }
    response = await http.post(
        "/v1/events",
        content=json.dumps(event),
        headers={"Content-Type": "application/cloudevents+json", **shop.auth("backend")},
    )

    assert response.status_code == 202, response.text
    case_id = response.json()["case_id"]
    cases.handles.append(client.get_workflow_handle(case_id))
    cases.watch("LOT-77")
    await status_of(client, case_id, CaseStatus.ESCALATED)


async def test_qa_findings_are_taken_from_qa_only_and_recorded_as_the_caller(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    opened = await http.post("/v1/complaints", json=body(), headers=shop.auth("backend"))
    case_id = opened.json()["case_id"]
    handle = client.get_workflow_handle(case_id)
    cases.handles.append(handle)
    cases.watch("LOT-77")
    await timers_started(handle)
    findings = {"type": "qa_findings", "event_id": "qa-1", "root_cause": "packaging"}

    refused = await http.post(
        f"/v1/cases/{case_id}/events", json=findings, headers=shop.auth("agent-amy")
    )
    named = await http.post(
        f"/v1/cases/{case_id}/events",
        json={**findings, "reported_by": "qa-quinn"},
        headers=shop.auth("qa-quinn"),
    )
    taken = await http.post(
        f"/v1/cases/{case_id}/events", json=findings, headers=shop.auth("qa-quinn")
    )

    assert refused.status_code == 403
    assert named.status_code == 422  # the actor is the caller, never the body's word
    assert taken.status_code == 202, taken.text
    [line] = await eventually(lambda: [a for a in audit(shop, case_id) if a.event == "qa_findings"])
    assert line.actor == "qa-quinn"
    assert line.detail["root_cause"] == "packaging"


async def test_a_complaint_opened_from_the_command_line(
    env: WorkflowEnvironment, client: Client, cases: Cases, settings: Settings, shop: Shop
) -> None:
    request_id = uuid.uuid4().hex[:10]
    variables = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")},
        "DATABASE_URL": settings.database_url,
        "TASK_QUEUE": settings.task_queue,
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "CASEWORK_CREDENTIALS": "/nonexistent/casework-credentials.json",
    }
    started = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable, "-m", "starter", "complaint", "--order", "ORD-1001",
            "--customer", "C-100", "--category", "medical", "--description", "nausea",
            "--sku", "ELK-JERKY", "--lot", "LOT-9", "--photos", "https://p.example.com/1.jpg",
            "--photos", "https://p.example.com/2.jpg", "--requested-resolution", "replacement",
            "--requested-by", "agent-amy", "--request-id", request_id,
        ],
        env=variables,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip

    assert started.returncode == 0, started.stderr
    case_id = f"complaint-{request_id}"
    cases.handles.append(client.get_workflow_handle(case_id))
    cases.watch("LOT-9")
    state = await status_of(client, case_id, CaseStatus.RESOLVING)
    assert state.step.startswith("Replacing")
