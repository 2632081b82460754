"""Opening cancellations and answering their return offers over HTTP, CloudEvents and the CLI.

The routes derive from the registry entry; these specifications pin the cancellation's own
contract: a reason outside CANCEL_REASONS is bad input (422, CLI exit 2) and starts nothing,
the return offer is answered by an agent or the backend as the caller, a late answer is 409.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from starter import case_exists
from tests.cancellation_helpers import an_order, order, ship, status_of
from tests.case_helpers import TUESDAY, audit, move_to
from tests.conftest import Cases, Shop
from workflows.models import CaseStatus


def body(order_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": order_id,
        "customer_id": "C-100",
        "reason": "changed_mind",
        "requested_by": "agent-amy",
        **fields,
    }


async def test_a_reason_not_in_cancel_reasons_is_422_naming_reason_and_starts_nothing(
    http: httpx.AsyncClient, client: Client, shop: Shop
) -> None:
    order_id = an_order(shop)
    request = body(order_id, reason="bored")

    response = await http.post("/v1/cancellations", json=request, headers=shop.auth("backend"))

    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [
        {"field": "reason", "message": response.json()["fields"][0]["message"]}
    ]
    assert "ordered_by_mistake" in response.json()["detail"]
    assert not await case_exists(client, f"cancellation-{request['request_id']}")
    assert order(shop, order_id).status == "processing"


async def test_an_unknown_reason_in_a_cloud_event_is_422_naming_data_reason(
    http: httpx.AsyncClient, client: Client, shop: Shop
) -> None:
    data = body(an_order(shop), reason="bored")
    event = {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex[:10]}",
        "source": "/shop/orders",
        "type": "order.cancel_requested",
        "data": data,
    }
    response = await http.post(
        "/v1/events",
        content=httpx.Request("POST", "/", json=event).content,
        headers={**shop.auth("backend"), "Content-Type": "application/cloudevents+json"},
    )

    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["fields"]] == ["data.reason"]
    assert not await case_exists(client, f"cancellation-{data['request_id']}")


async def test_an_order_cancel_requested_cloud_event_cancels_the_order(
    env: WorkflowEnvironment, http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    event = {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex[:10]}",
        "source": "/shop/orders",
        "type": "order.cancel_requested",
        "data": body(order_id),
    }
    response = await http.post(
        "/v1/events",
        content=httpx.Request("POST", "/", json=event).content,
        headers={**shop.auth("backend"), "Content-Type": "application/cloudevents+json"},
    )

    assert response.status_code == 202, response.text
    case_id = str(response.json()["case_id"])
    cases.handles.append(client.get_workflow_handle(case_id))
    await status_of(client, case_id, CaseStatus.CANCELLED)
    assert order(shop, order_id).status == "cancelled"


async def test_the_return_offer_is_answered_by_an_agent_or_the_backend_as_the_caller(
    env: WorkflowEnvironment, http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    ship(shop, order_id)
    response = await http.post(
        "/v1/cancellations", json=body(order_id), headers=shop.auth("backend")
    )
    assert response.status_code == 202, response.text
    case_id = str(response.json()["case_id"])
    cases.handles.append(client.get_workflow_handle(case_id))
    await status_of(client, case_id, CaseStatus.AWAITING_CUSTOMER)

    warehouse = await http.post(
        f"/v1/cases/{case_id}/events",
        json={"type": "return_declined", "event_id": "no-1"},
        headers=shop.auth("warehouse-wes"),
    )
    named = await http.post(
        f"/v1/cases/{case_id}/events",
        json={"type": "return_declined", "event_id": "no-1", "answered_by": "C-100"},
        headers=shop.auth("agent-amy"),
    )
    declined = await http.post(
        f"/v1/cases/{case_id}/events",
        json={"type": "return_declined", "event_id": "no-1", "on_behalf_of": "C-100"},
        headers=shop.auth("agent-amy"),
    )

    assert warehouse.status_code == 403, warehouse.text
    assert named.status_code == 422, named.text
    assert declined.status_code == 202, declined.text
    await client.get_workflow_handle(case_id).result()
    [line] = [a for a in audit(shop, case_id) if a.event == "return_declined"]
    assert line.actor == "agent-amy"
    assert line.detail["on_behalf_of"] == "C-100"


async def test_a_return_requested_after_the_offer_expired_is_409_and_opens_nothing(
    env: WorkflowEnvironment, http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    order_id = an_order(shop)
    ship(shop, order_id)
    response = await http.post(
        "/v1/cancellations", json=body(order_id), headers=shop.auth("backend")
    )
    case_id = str(response.json()["case_id"])
    handle = client.get_workflow_handle(case_id)
    cases.handles.append(handle)
    await status_of(client, case_id, CaseStatus.AWAITING_CUSTOMER)
    await env.sleep(timedelta(days=3, minutes=1))
    await handle.result()

    late = await http.post(
        f"/v1/cases/{case_id}/events",
        json={"type": "return_requested", "event_id": "yes-1"},
        headers=shop.auth("backend"),
    )

    assert late.status_code == 409, late.text
    assert late.json()["error"] == "offer_expired"
    assert not await case_exists(client, f"return-{case_id}")


@pytest.mark.parametrize(
    ("reason", "code"), [("bored", 2), ("ordered_by_mistake", 0)], ids=["unknown", "listed"]
)
async def test_a_cancellation_from_the_command_line_is_refused_for_an_unknown_reason(
    env: WorkflowEnvironment,
    client: Client,
    cases: Cases,
    settings: Settings,
    shop: Shop,
    reason: str,
    code: int,
) -> None:
    await move_to(env, TUESDAY, 10)
    request_id = uuid.uuid4().hex[:10]
    order_id = an_order(shop)
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
            sys.executable, "-m", "starter", "cancellation", "--order", order_id,
            "--customer", "C-100", "--reason", reason, "--reason-text", "by mistake",
            "--requested-by", "agent-amy", "--request-id", request_id,
        ],
        env=variables,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip

    case_id = f"cancellation-{request_id}"
    assert started.returncode == code, started.stderr
    if code:
        assert "reason: unknown reason 'bored'" in started.stderr
        assert not await case_exists(client, case_id)
        assert order(shop, order_id).status == "processing"
        return
    cases.handles.append(client.get_workflow_handle(case_id))
    state = await status_of(client, case_id, CaseStatus.CANCELLED)
    assert state.reason == "ordered_by_mistake"
    assert state.reason_text == "by mistake"
