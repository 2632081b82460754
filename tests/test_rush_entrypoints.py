"""Opening rush orders and answering their quotes over HTTP, CloudEvents and the CLI.

The routes derive from the registry entry; these specifications pin the rush order's own
contract: bad input refused with 422 and nothing started, a late acceptance refused with 409
and nothing changed, roles checked, the actor the authenticated caller.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from starter import case_exists
from tests.case_helpers import TUESDAY, audit, eventually, move_to
from tests.conftest import Cases, Shop
from tests.rush_helpers import charges, order, status_of, stocked_order
from workflows.models import CaseStatus


def body(order_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": order_id,
        "customer_id": "C-100",
        "requested_by": "agent-amy",
        **fields,
    }


async def opened(http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop) -> str:
    """A rush order opened over HTTP by the backend; its case id, once it waits for an answer."""
    response = await http.post(
        "/v1/rush-orders", json=body(stocked_order(shop)), headers=shop.auth("backend")
    )
    assert response.status_code == 202, response.text
    case_id = str(response.json()["case_id"])
    cases.handles.append(client.get_workflow_handle(case_id))
    await status_of(client, case_id, CaseStatus.AWAITING_CUSTOMER)
    return case_id


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"requested_delivery_date": "next tuesday"}, "requested_delivery_date"),
        ({"customer_id": "C 100"}, "customer_id"),
        ({"fee": "0.00"}, "fee"),
    ],
    ids=["not-a-date", "bad-customer-id", "unknown-field"],
)
async def test_bad_rush_requests_are_422_and_start_nothing(
    http: httpx.AsyncClient, client: Client, shop: Shop, fields: dict[str, Any], field: str
) -> None:
    request = body("ORD-1001", **fields)
    response = await http.post("/v1/rush-orders", json=request, headers=shop.auth("backend"))

    assert response.status_code == 422, response.text
    assert field in response.text
    assert not await case_exists(client, f"rush-{request['request_id']}")


async def test_a_rush_order_requested_cloud_event_opens_a_case(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    event = {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex[:10]}",
        "source": "/shop/orders",
        "type": "rush_order.requested",
        "data": body(stocked_order(shop), requested_delivery_date="2031-01-10"),
    }
    response = await http.post(
        "/v1/events",
        content=json.dumps(event),
        headers={"Content-Type": "application/cloudevents+json", **shop.auth("backend")},
    )

    assert response.status_code == 202, response.text
    case_id = response.json()["case_id"]
    assert case_id.startswith("rush-")
    cases.handles.append(client.get_workflow_handle(case_id))
    state = await status_of(client, case_id, CaseStatus.AWAITING_CUSTOMER)
    assert state.requested_delivery_date is not None
    assert state.requested_delivery_date.isoformat() == "2031-01-10"


async def test_an_acceptance_after_the_quote_expired_is_409_and_changes_nothing(
    env: WorkflowEnvironment, http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    case_id = await opened(http, cases, client, shop)
    await env.sleep(timedelta(hours=2, minutes=1))
    await status_of(client, case_id, CaseStatus.DECLINED)

    late = await http.post(
        f"/v1/cases/{case_id}/events",
        json={"type": "fee_accepted", "event_id": "acc-late"},
        headers=shop.auth("agent-amy"),
    )

    assert late.status_code == 409, late.text
    assert late.json()["error"] == "quote_expired"
    assert "expired" in late.json()["detail"]
    assert charges(shop, case_id) == []
    state = await status_of(client, case_id, CaseStatus.DECLINED)
    assert state.fee_answer is None


async def test_the_fee_is_accepted_by_an_agent_or_the_backend_only_and_recorded_as_the_caller(
    env: WorkflowEnvironment, http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    case_id = await opened(http, cases, client, shop)
    accepted = {"type": "fee_accepted", "event_id": "acc-1", "on_behalf_of": "C-100"}

    forbidden = await http.post(
        f"/v1/cases/{case_id}/events", json=accepted, headers=shop.auth("warehouse-wes")
    )
    named = await http.post(
        f"/v1/cases/{case_id}/events",
        json={**accepted, "answered_by": "mgr-mia"},
        headers=shop.auth("agent-amy"),
    )
    taken = await http.post(
        f"/v1/cases/{case_id}/events", json=accepted, headers=shop.auth("agent-amy")
    )
    again = await http.post(
        f"/v1/cases/{case_id}/events", json=accepted, headers=shop.auth("agent-amy")
    )

    assert forbidden.status_code == 403
    assert named.status_code == 422  # the actor is the caller, never the body's word
    assert taken.status_code == 202, taken.text
    assert again.status_code == 202  # the same event id again: answered as before
    [line] = await eventually(
        lambda: [a for a in audit(shop, case_id) if a.event == "fee_accepted"]
    )
    assert line.actor == "agent-amy"
    assert line.detail["on_behalf_of"] == "C-100"
    [charge] = await eventually(lambda: charges(shop, case_id))
    assert charge.amount == Decimal("55.00")


async def test_a_delivered_event_comes_from_the_backend_only(
    env: WorkflowEnvironment, http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    case_id = await opened(http, cases, client, shop)
    delivered = {"type": "delivered", "event_id": "dlv-1", "tracking_number": "1Z42"}

    refused = await http.post(
        f"/v1/cases/{case_id}/events", json=delivered, headers=shop.auth("agent-amy")
    )

    assert refused.status_code == 403
    assert "backend" in refused.json()["detail"]


async def test_a_rush_order_opened_from_the_command_line(
    env: WorkflowEnvironment, client: Client, cases: Cases, settings: Settings, shop: Shop
) -> None:
    request_id = uuid.uuid4().hex[:10]
    order_id = stocked_order(shop)
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
            sys.executable, "-m", "starter", "rush", "--order", order_id,
            "--customer", "C-100", "--requested-delivery-date", "2031-01-10",
            "--requested-by", "agent-amy", "--request-id", request_id,
        ],
        env=variables,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip

    assert started.returncode == 0, started.stderr
    case_id = f"rush-{request_id}"
    cases.handles.append(client.get_workflow_handle(case_id))
    state = await status_of(client, case_id, CaseStatus.AWAITING_CUSTOMER)
    assert state.fee == Decimal("55.00")
    assert order(shop, order_id).total == Decimal("200.00")


async def test_a_rush_order_with_a_date_sent_twice_is_one_case(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    request = body(stocked_order(shop), requested_delivery_date="2031-01-10")
    first = await http.post("/v1/rush-orders", json=request, headers=shop.auth("backend"))
    again = await http.post("/v1/rush-orders", json=request, headers=shop.auth("backend"))
    changed = await http.post(
        "/v1/rush-orders",
        json={**request, "requested_delivery_date": "2031-01-11"},
        headers=shop.auth("backend"),
    )

    assert first.status_code == 202, first.text
    cases.handles.append(client.get_workflow_handle(first.json()["case_id"]))
    assert again.status_code == 200, again.text
    assert again.json()["case_id"] == first.json()["case_id"]
    assert changed.status_code == 409, changed.text
