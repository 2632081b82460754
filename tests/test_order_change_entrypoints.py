"""Opening order changes and answering their quotes over HTTP, CloudEvents and the CLI.

The routes derive from the registry entry; these specifications pin the order change's own
contract: a request naming the wrong fields for its kind refused with 422 and nothing
started, a late acceptance refused with 409 and nothing changed, roles checked, the actor
the authenticated caller.
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
from tests.order_change_helpers import charges, lines, processing_order, status_of
from workflows.models import CaseStatus


def body(order_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": order_id,
        "customer_id": "C-100",
        "kind": "quantity",
        "sku": "ELK-SAUSAGE",
        "quantity": 6,
        "reason": "more guests",
        "requested_by": "agent-amy",
        **fields,
    }


async def opened(http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop) -> str:
    """An order change opened over HTTP by the backend; its case id, once it is quoted."""
    response = await http.post(
        "/v1/order-changes", json=body(processing_order(shop)), headers=shop.auth("backend")
    )
    assert response.status_code == 202, response.text
    case_id = str(response.json()["case_id"])
    cases.handles.append(client.get_workflow_handle(case_id))
    await status_of(client, case_id, CaseStatus.AWAITING_CUSTOMER)
    return case_id


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"quantity": None}, "needs quantity"),
        ({"kind": "address", "address": "1 Elm St"}, "takes no quantity, sku"),
        ({"kind": "item", "quantity": None, "new_sku": "ELK-SAUSAGE"}, "already has"),
        ({"kind": "resize"}, "kind"),
        ({"quantity": -1}, "quantity"),
        ({"price_adjustment": "0.00"}, "price_adjustment"),
        ({"reason": ""}, "reason"),
        ({"kind": "address", "sku": None, "quantity": None, "address": "x" * 501}, "address"),
        ({"fee": "0.00"}, "fee"),
    ],
    ids=[
        "quantity-without-quantity",
        "address-with-line-fields",
        "item-to-itself",
        "unknown-kind",
        "negative-quantity",
        "zero-adjustment",
        "no-reason",
        "address-too-long",
        "unknown-field",
    ],
)
async def test_bad_order_change_requests_are_422_and_start_nothing(
    http: httpx.AsyncClient, client: Client, shop: Shop, fields: dict[str, Any], words: str
) -> None:
    request = {k: v for k, v in body("ORD-1001", **fields).items() if v is not None}
    response = await http.post("/v1/order-changes", json=request, headers=shop.auth("backend"))

    assert response.status_code == 422, response.text
    assert words in response.text
    assert not await case_exists(client, f"order-change-{request['request_id']}")


async def test_an_order_change_requested_cloud_event_opens_a_case(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    data = body(processing_order(shop), kind="item", quantity=None, new_sku="ELK-LOIN")
    event = {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex[:10]}",
        "source": "/shop/orders",
        "type": "order.change_requested",
        "data": {k: v for k, v in data.items() if v is not None},
    }
    response = await http.post(
        "/v1/events",
        content=json.dumps(event),
        headers={"Content-Type": "application/cloudevents+json", **shop.auth("backend")},
    )

    assert response.status_code == 202, response.text
    case_id = response.json()["case_id"]
    assert case_id.startswith("order-change-")
    cases.handles.append(client.get_workflow_handle(case_id))
    state = await status_of(client, case_id, CaseStatus.AWAITING_CUSTOMER)
    assert state.difference == Decimal("60.00")


async def test_an_acceptance_after_the_quote_expired_is_409_and_changes_nothing(
    env: WorkflowEnvironment, http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    case_id = await opened(http, cases, client, shop)
    await env.sleep(timedelta(hours=8, minutes=1))  # 18:01: the eight business hours are gone
    await status_of(client, case_id, CaseStatus.DECLINED)

    late = await http.post(
        f"/v1/cases/{case_id}/events",
        json={"type": "change_accepted", "event_id": "acc-late"},
        headers=shop.auth("agent-amy"),
    )

    assert late.status_code == 409, late.text
    assert late.json()["error"] == "quote_expired"
    assert "expired" in late.json()["detail"]
    assert charges(shop, case_id) == []
    state = await status_of(client, case_id, CaseStatus.DECLINED)
    assert state.answer is None and not state.applied


async def test_a_quote_is_answered_by_an_agent_or_the_backend_only_as_the_caller(
    env: WorkflowEnvironment, http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    await move_to(env, TUESDAY, 10)
    case_id = await opened(http, cases, client, shop)
    accepted = {"type": "change_accepted", "event_id": "acc-1", "on_behalf_of": "C-100"}

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
    other = await http.post(
        f"/v1/cases/{case_id}/events",
        json={"type": "change_declined", "event_id": "dec-1"},
        headers=shop.auth("backend"),
    )

    assert forbidden.status_code == 403
    assert named.status_code == 422  # the actor is the caller, never the body's word
    assert taken.status_code == 202, taken.text
    assert again.status_code == 202  # the same event id again: answered as before
    assert other.status_code == 409 and "already answered" in other.json()["detail"]
    [line] = await eventually(
        lambda: [a for a in audit(shop, case_id) if a.event == "change_accepted"]
    )
    assert line.actor == "agent-amy"
    assert line.detail["on_behalf_of"] == "C-100"
    [charge] = await eventually(lambda: charges(shop, case_id))
    assert charge.amount == Decimal("40.00")


async def test_an_order_change_opened_from_the_command_line(
    env: WorkflowEnvironment, client: Client, cases: Cases, settings: Settings, shop: Shop
) -> None:
    request_id = uuid.uuid4().hex[:10]
    order_id = processing_order(shop)
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
            sys.executable, "-m", "starter", "order-change", "--order", order_id,
            "--customer", "C-100", "--kind", "quantity", "--sku", "BISON-RIBEYE",
            "--quantity", "1", "--reason", "one is enough", "--requested-by", "agent-amy",
            "--request-id", request_id,
        ],
        env=variables,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip

    assert started.returncode == 0, started.stderr
    case_id = f"order-change-{request_id}"
    cases.handles.append(client.get_workflow_handle(case_id))
    state = await status_of(client, case_id, CaseStatus.AWAITING_CUSTOMER)
    assert state.difference == Decimal("-60.00")
    assert lines(shop, order_id)["BISON-RIBEYE"] == (2, Decimal("60.00"))
