"""The HTTP API at its edges: no worker polling, hostile bodies, forged page tokens.

Over the real dev server with no worker on the test's task queue (a worker outage as
production sees it), and the app in process over httpx, whose request bodies stream.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import starter
import starter.api
from activities.staff import StaffDirectory
from infra.db import AuditRecord, Case
from registry import PROCEDURES
from settings import Settings
from starter.api import MAX_BODY_BYTES, MAX_JSON_DEPTH, create_app
from tests.conftest import Cases, Shop
from tests.http_helpers import (
    BASE_URL,
    CLOUDEVENTS_JSON,
    Api,
    cloud_event,
    refund_body,
    terminate_if_running,
)
from workflows.models import RefundRequest

# Long enough for the dev server to take the request, short enough for a test.
NOBODY_ANSWERS_WITHIN = 1.5


@pytest.fixture
async def idle_api(
    dev_env: WorkflowEnvironment,
    shop: Shop,
    settings: Settings,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Api]:
    """The app over the dev server while no worker polls the task queue."""
    monkeypatch.setattr(starter, "UPDATE_TIMEOUT", NOBODY_ANSWERS_WITHIN, raising=False)
    monkeypatch.setattr(starter.api, "UPDATE_TIMEOUT", NOBODY_ANSWERS_WITHIN, raising=False)
    shop.tokens["wh-wes"] = StaffDirectory(shop.db).add(
        staff_id="wh-wes",
        name="Wes",
        email="wh-wes@exoticmeats.com",
        role="warehouse",
        approval_limit=Decimal("0"),
    )
    app = create_app(dev_env.client, database_url=database_url, settings=settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=60) as http:
        api = Api(http, shop.tokens)
        yield api
    for case_id in api.opened:
        await terminate_if_running(dev_env.client, case_id)


async def opened(api: Api, path: str, body: dict[str, Any]) -> str:
    response = await api.call("POST", path, json=body)
    assert response.status_code == 202, response.text
    case_id: str = response.json()["case_id"]
    return case_id


# ---- item 10: an update nobody answers -------------------------------------------------------


async def test_a_decision_no_worker_answers_is_503_case_not_answering(idle_api: Api) -> None:
    case_id = await opened(idle_api, "/v1/refunds", refund_body("750.00"))
    started = time.monotonic()
    response = await asyncio.wait_for(
        idle_api.call(
            "POST",
            f"/v1/cases/{case_id}/decision",
            as_="mgr-mia",
            json={"decision": "approve", "note": ""},
            headers={"Idempotency-Key": "click-1"},
        ),
        30,
    )
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "case_not_answering"
    assert "may still" in body["detail"] and "Idempotency-Key" in body["detail"]
    assert time.monotonic() - started < NOBODY_ANSWERS_WITHIN + 5


async def test_an_event_no_worker_answers_is_503_case_not_answering(idle_api: Api) -> None:
    body = {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": "ORD-1001",
        "customer_id": "C-100",
        "items": [{"sku": "BISON-RIBEYE", "quantity": 1}],
        "reason": "wrong cut",
        "requested_by": "agent-amy",
    }
    case_id = await opened(idle_api, "/v1/returns", body)
    response = await asyncio.wait_for(
        idle_api.call(
            "POST",
            f"/v1/cases/{case_id}/events",
            as_="wh-wes",
            json={"type": "package_received", "event_id": "e-1", "ra_number": "RA-2026-000001"},
        ),
        30,
    )
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "case_not_answering"


# ---- item 11: a query nobody answers ---------------------------------------------------------


def record_case(shop: Shop, case_id: str, status: str = "awaiting_approval") -> None:
    """The case's audit copy, as the worker's activities leave it in the database."""
    now = datetime.now(UTC)
    with shop.db.transaction() as session:
        session.add(
            Case(
                id=case_id,
                type="refund",
                status=status,
                step="Awaiting manager approval",
                order_id="ORD-1001",
                customer_id="C-100",
                amount=Decimal("750.00"),
                requested_by="agent-amy",
                request={},
                rules={},
                opened_at=now,
                updated_at=now,
            )
        )
        session.flush()
        session.add(
            AuditRecord(
                case_id=case_id, seq=1, at=now, event="case_opened", actor="agent-amy", detail={}
            )
        )


async def test_case_is_read_from_the_database_when_no_worker_answers(
    idle_api: Api, shop: Shop
) -> None:
    case_id = await opened(idle_api, "/v1/refunds", refund_body("750.00"))
    record_case(shop, case_id)
    response = await idle_api.call("GET", f"/v1/cases/{case_id}", as_="agent-amy")
    assert response.status_code == 200, response.text
    case = response.json()
    assert (case["source"], case["status"], case["amount"]) == (
        "database",
        "awaiting_approval",
        "750.00",
    )
    assert [entry["event"] for entry in case["timeline"]] == ["case_opened"]


async def test_case_no_worker_answers_and_not_yet_recorded_is_503(idle_api: Api) -> None:
    case_id = await opened(idle_api, "/v1/refunds", refund_body("750.00"))
    response = await idle_api.call("GET", f"/v1/cases/{case_id}", as_="agent-amy")
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "case_not_answering"


# ---- item 12: bodies that would exhaust the server -------------------------------------------


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


JSON_ROUTES = [
    *((f"/v1/{p.path}", {"Content-Type": "application/json"}) for p in PROCEDURES),
    ("/v1/events", CLOUDEVENTS_JSON),
    ("/v1/cases/refund-x/decision", {"Content-Type": "application/json"}),
    ("/v1/cases/refund-x/events", {"Content-Type": "application/json"}),
]


@pytest.mark.parametrize(("path", "headers"), JSON_ROUTES)
async def test_json_nested_1000_deep_is_refused_with_422(
    idle_api: Api, path: str, headers: dict[str, str]
) -> None:
    for body in (nested(1000), "[" * 1000 + "]" * 1000):
        response = await idle_api.call("POST", path, as_="mgr-mia", content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json() == {
            "error": "json_too_deep",
            "detail": f"the body nests deeper than {MAX_JSON_DEPTH} levels",
        }


async def test_depth_counts_brackets_inside_strings_as_text(idle_api: Api) -> None:
    body = refund_body("20.00", reason="[" * 200 + "{" * 200)
    response = await idle_api.call("POST", "/v1/refunds", json=body)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(("path", "headers"), JSON_ROUTES)
async def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(
    idle_api: Api, path: str, headers: dict[str, str]
) -> None:
    chunk = b" " * 1024
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        # 8 MiB, no Content-Length: the server must stop reading at its limit.
        nonlocal sent
        for _ in range(8 * 1024):
            sent += len(chunk)
            yield chunk

    response = await idle_api.http.post(
        path,
        content=endless(),
        headers={**headers, "Authorization": f"Bearer {idle_api.tokens['backend']}"},
    )
    assert response.status_code == 413, response.text
    assert response.json() == {
        "error": "body_too_large",
        "detail": f"the body exceeds {MAX_BODY_BYTES} bytes",
    }
    assert sent <= MAX_BODY_BYTES + 2 * len(chunk)


async def test_a_declared_length_over_the_limit_is_refused_unread(idle_api: Api) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += 1024
            yield b" " * 1024

    response = await idle_api.http.post(
        "/v1/cases/refund-x/decision",
        content=body(),
        headers={
            "Content-Type": "application/json",
            "Content-Length": str(100 * 1024),
            "Authorization": f"Bearer {idle_api.tokens['mgr-mia']}",
        },
    )
    assert response.status_code == 413
    assert sent <= 1024


@pytest.mark.parametrize("token", ["AAAA", "bm90LWEtdG9rZW4=", "%%%"])
async def test_a_page_token_not_from_this_api_is_422(idle_api: Api, token: str) -> None:
    response = await idle_api.http.get(
        "/v1/cases",
        params={"page_token": token},
        headers={"Authorization": f"Bearer {idle_api.tokens['agent-amy']}"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert "page_token" in response.json()["detail"]


async def test_a_cloud_event_still_opens_a_case(idle_api: Api) -> None:
    response = await idle_api.call(
        "POST",
        "/v1/events",
        content=json.dumps(cloud_event(refund_body("20.00"))),
        headers=CLOUDEVENTS_JSON,
    )
    assert response.status_code == 202, response.text


# ---- item 19: a start for a case that exists says so ----------------------------------------


async def test_a_request_id_that_opened_a_case_elsewhere_is_answered_as_a_repeat(
    client: Client, cases: Cases, shop: Shop, settings: Settings, database_url: str
) -> None:
    body = refund_body("20.00")
    request = RefundRequest.model_validate(body)
    handle = await cases.refund(request)  # opened by the CLI or the typed client
    await handle.result()
    app = create_app(client, database_url=database_url, settings=settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        api = Api(http, shop.tokens)
        response = await api.call("POST", "/v1/refunds", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
