"""The HTTP API, specified over the time-skipping server and the real worker.

Every test talks HTTP to the app in process (httpx ASGITransport); cases the API opens are
terminated when the test ends, like those started through ``cases``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from infra.db import ApiRequest
from registry import PROCEDURES
from settings import Settings
from starter import DATA_CONVERTER
from starter.api import Store, create_app
from tests.complaint_helpers import complaint
from tests.conftest import Cases, Shop
from tests.http_helpers import (
    BASE_URL,
    CLOUDEVENTS_JSON,
    Api,
    cloud_event,
    refund_body,
    terminate_if_running,
)
from tests.refund_helpers import ledger

# Idempotency rests on the database's unique key: prove it on both engines.
ON_BOTH_DATABASES = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


def api_requests(shop: Shop) -> list[ApiRequest]:
    with shop.db.transaction() as session:
        return list(session.scalars(select(ApiRequest)))


@pytest.fixture
async def api(
    client: Client, cases: Cases, shop: Shop, settings: Settings, database_url: str
) -> AsyncIterator[Api]:
    app = create_app(client, database_url=database_url, settings=settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        yield Api(http, shop.tokens, cases)


@pytest.fixture
async def visible_api(
    dev_env: WorkflowEnvironment, shop: Shop, settings: Settings, database_url: str
) -> AsyncIterator[Api]:
    """The app over the dev server, where visibility (listing) works; no worker runs."""
    app = create_app(dev_env.client, database_url=database_url, settings=settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        api = Api(http, shop.tokens)
        yield api
    for case_id in api.opened:
        await terminate_if_running(dev_env.client, case_id)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
async def temporal_down(
    closed_port: int, shop: Shop, settings: Settings, database_url: str
) -> AsyncIterator[Api]:
    """The app with a Temporal that cannot be reached."""
    dead = await Client.connect(
        f"127.0.0.1:{closed_port}",
        lazy=True,
        retry_config=RetryConfig(max_retries=0),
        data_converter=DATA_CONVERTER,
    )
    app = create_app(dead, database_url=database_url, settings=settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        yield Api(http, shop.tokens)


# ---- opening cases ---------------------------------------------------------------------------


async def test_refund_request_opens_a_case(api: Api) -> None:
    body = refund_body("20.00")
    response = await api.call("POST", "/v1/refunds", json=body)
    assert response.status_code == 202
    case_id = f"refund-{body['request_id']}"
    assert response.json() == {
        "case_id": case_id,
        "workflow_id": case_id,
        "type": "refund",
        "status": "received",
    }
    assert response.headers["Location"] == f"/v1/cases/{case_id}"
    case = await api.case_when(case_id, lambda c: c["outcome"] is not None)
    assert case["status"] == "completed"
    assert case["amount"] == "20.00"
    assert case["outcome"]["amount"] == "20.00"


async def test_duplicate_request_returns_existing_case(api: Api, shop: Shop) -> None:
    body = refund_body("750.00")
    first = await api.call("POST", "/v1/refunds", json=body)
    again = await api.call("POST", "/v1/refunds", json=body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["case_id"] == first.json()["case_id"]
    assert [row.case_id for row in api_requests(shop)] == [first.json()["case_id"]]


async def test_same_amount_written_differently_is_the_same_request(api: Api) -> None:
    body = refund_body("750.00")
    first = await api.call("POST", "/v1/refunds", json=body)
    again = await api.call("POST", "/v1/refunds", json={**body, "amount": "750"})
    assert (first.status_code, again.status_code) == (202, 200)


@ON_BOTH_DATABASES
async def test_same_request_id_with_different_body_is_a_conflict(api: Api, shop: Shop) -> None:
    body = refund_body("750.00")
    first = await api.call("POST", "/v1/refunds", json=body)
    changed = await api.call("POST", "/v1/refunds", json={**body, "amount": "800.00"})
    assert changed.status_code == 409
    assert changed.json()["error"] == "conflict"
    assert body["request_id"] in changed.json()["detail"]
    assert first.json()["case_id"] in changed.json()["detail"]
    [row] = api_requests(shop)
    assert row.case_id == first.json()["case_id"]


@ON_BOTH_DATABASES
async def test_ten_concurrent_identical_requests_open_one_case(api: Api, shop: Shop) -> None:
    body = refund_body("750.00")
    responses = await asyncio.gather(
        *(api.call("POST", "/v1/refunds", json=body) for _ in range(10))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 9 + [202]
    assert {r.json()["case_id"] for r in responses} == {f"refund-{body['request_id']}"}
    assert len(api_requests(shop)) == 1


async def test_invalid_request_names_the_field(api: Api, shop: Shop) -> None:
    response = await api.refund("-5.00")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert [f["field"] for f in body["fields"]] == ["amount"]
    assert body["detail"].startswith("amount: ")
    assert api_requests(shop) == []


async def test_missing_field_is_named(api: Api) -> None:
    body = refund_body()
    del body["order_id"]
    response = await api.call("POST", "/v1/refunds", json=body)
    assert response.status_code == 422
    assert response.json()["fields"] == [{"field": "order_id", "message": "Field required"}]


async def test_a_start_with_a_field_the_api_does_not_know_is_422(api: Api, shop: Shop) -> None:
    # History models tolerate unknown fields (for replay); the API boundary stays strict.
    response = await api.call("POST", "/v1/refunds", json={**refund_body(), "amout": "5.00"})
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["amout"]
    assert api_requests(shop) == []


async def test_a_return_item_with_a_field_the_api_does_not_know_is_422(api: Api) -> None:
    body = {
        "request_id": "strict-1",
        "order_id": "ORD-1001",
        "customer_id": "C-100",
        "items": [{"sku": "BISON-RIBEYE", "quantity": 1, "colour": "red"}],
        "reason": "wrong cut",
        "requested_by": "agent-amy",
    }
    response = await api.call("POST", "/v1/returns", json=body)
    assert response.status_code == 422
    assert "items.0.colour" in [f["field"] for f in response.json()["fields"]]


async def test_body_that_is_not_json_is_422(api: Api) -> None:
    response = await api.call(
        "POST",
        "/v1/refunds",
        content="{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_json"


async def test_body_must_be_sent_as_json(api: Api) -> None:
    response = await api.call(
        "POST", "/v1/refunds", content="amount=5", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported_media_type",
        "detail": "send Content-Type: application/json",
    }


# ---- who may do what -------------------------------------------------------------------------


async def test_request_without_token_is_unauthorized(api: Api) -> None:
    response = await api.call("POST", "/v1/refunds", as_=None, json=refund_body())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthenticated"


async def test_unknown_token_is_unauthorized(api: Api) -> None:
    response = await api.call(
        "GET", "/v1/approvals", as_=None, headers={"Authorization": "Bearer cw_not-a-token"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "unauthenticated", "detail": "the token is not valid"}


async def test_only_backends_start_cases(api: Api, shop: Shop) -> None:
    response = await api.call("POST", "/v1/refunds", as_="mgr-mia", json=refund_body())
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "detail": "role 'manager' may not start cases",
    }
    assert api_requests(shop) == []


async def test_backends_do_not_decide_approvals(api: Api) -> None:
    case_id = await api.awaiting_approval()
    response = await api.decide(case_id, "approve", as_="backend")
    assert response.status_code == 403
    assert response.json()["detail"] == "role 'backend' may not decide approvals"


async def test_me_tells_the_caller_what_they_may_do(api: Api) -> None:
    response = await api.call("GET", "/v1/me", as_="sup-low")
    assert response.json() == {
        "id": "sup-low",
        "name": "sup-low",
        "role": "supervisor",
        "approval_limit": "600.00",
        "acting_for": [],
        "may_start_cases": False,
        "may_decide": True,
    }


# ---- CloudEvents -----------------------------------------------------------------------------


async def test_cloud_event_opens_a_case(api: Api) -> None:
    data = refund_body("20.00")
    response = await api.call(
        "POST", "/v1/events", content=json.dumps(cloud_event(data)), headers=CLOUDEVENTS_JSON
    )
    assert response.status_code == 202
    assert response.json()["case_id"] == f"refund-{data['request_id']}"
    case = await api.case_when(response.json()["case_id"], lambda c: c["outcome"] is not None)
    assert case["status"] == "completed"


async def test_redelivered_event_returns_existing_case(api: Api, shop: Shop) -> None:
    event = json.dumps(cloud_event(refund_body("750.00")))
    first = await api.call("POST", "/v1/events", content=event, headers=CLOUDEVENTS_JSON)
    again = await api.call("POST", "/v1/events", content=event, headers=CLOUDEVENTS_JSON)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["case_id"] == first.json()["case_id"]


async def test_event_id_reused_with_different_data_is_a_conflict(api: Api) -> None:
    event = cloud_event(refund_body("750.00"))
    await api.call("POST", "/v1/events", content=json.dumps(event), headers=CLOUDEVENTS_JSON)
    changed = {**event, "data": refund_body("750.00")}
    response = await api.call(
        "POST", "/v1/events", content=json.dumps(changed), headers=CLOUDEVENTS_JSON
    )
    assert response.status_code == 409
    assert event["id"] in response.json()["detail"]


async def test_unknown_event_type_is_422(api: Api, shop: Shop) -> None:
    event = cloud_event(refund_body(), type="refund.maybe")
    response = await api.call(
        "POST", "/v1/events", content=json.dumps(event), headers=CLOUDEVENTS_JSON
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": "unknown_event_type",
        "detail": (
            "unknown event type 'refund.maybe' "
            f"(known: {', '.join(sorted(p.event_type for p in PROCEDURES))})"
        ),
    }
    assert api_requests(shop) == []


async def test_event_with_invalid_data_names_the_field(api: Api) -> None:
    event = cloud_event(refund_body("0.00"))
    response = await api.call(
        "POST", "/v1/events", content=json.dumps(event), headers=CLOUDEVENTS_JSON
    )
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["data.amount"]


async def test_event_must_be_structured_cloudevents_json(api: Api) -> None:
    response = await api.call("POST", "/v1/events", json=cloud_event(refund_body()))
    assert response.status_code == 415
    assert response.json()["detail"] == "send Content-Type: application/cloudevents+json"


# ---- reading cases ---------------------------------------------------------------------------


async def test_case_shows_status_approval_and_timeline(api: Api) -> None:
    case_id = await api.awaiting_approval("750.00")
    case = await api.case(case_id)
    assert case["source"] == "workflow"
    assert (case["type"], case["status"], case["step"]) == (
        "refund",
        "awaiting_approval",
        "Awaiting manager approval",
    )
    assert (case["order_id"], case["customer_id"], case["amount"]) == (
        "ORD-1001",
        "C-100",
        "750.00",
    )
    approval = case["approval"]
    assert approval["status"] == "pending"
    assert approval["amount"] == "750.00"
    assert set(approval["eligible_approvers"]) == {"sup-sam", "mgr-mia", "mgr-max"}
    assert approval["decided_by"] is None
    assert case["outcome"] is None
    events = [entry["event"] for entry in case["timeline"]]
    assert events[:3] == ["case_opened", "verifying", "order_verified"]
    assert events[-1] == "email_approval_requested"
    assert case["opened_at"] is not None


async def test_unknown_case_is_404(api: Api) -> None:
    response = await api.call("GET", "/v1/cases/refund-nope", as_="agent-amy")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "no case refund-nope"}


async def test_case_is_read_from_the_database_when_temporal_is_down(
    api: Api, temporal_down: Api
) -> None:
    response = await api.refund("20.00")
    case_id = response.json()["case_id"]
    await api.case_when(case_id, lambda c: c["outcome"] is not None)
    case = await temporal_down.case(case_id)
    assert case["source"] == "database"
    assert (case["status"], case["amount"]) == ("completed", "20.00")
    assert [e["event"] for e in case["timeline"]][-1] == "case_completed"


async def listed(api: Api, count: int, **params: str) -> dict[str, Any]:
    """The listing once visibility (eventually consistent) shows ``count`` cases."""
    for _ in range(100):
        response = await api.http.get(
            "/v1/cases",
            params=params,
            headers={"Authorization": f"Bearer {api.tokens['agent-amy']}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if len(body["items"]) == count:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"the listing never showed {count} cases; last: {body}")


async def test_cases_are_listed_by_search_attributes(visible_api: Api) -> None:
    order_id = f"ORD-L-{uuid.uuid4().hex[:6]}"
    mine = [(await visible_api.refund(order_id=order_id)).json()["case_id"] for _ in range(2)]
    await visible_api.refund(order_id=f"{order_id}-other")
    body = await listed(visible_api, 2, order_id=order_id, type="refund", status="received")
    assert sorted(item["case_id"] for item in body["items"]) == sorted(mine)
    item = body["items"][0]
    assert (item["type"], item["status"], item["order_id"], item["customer_id"]) == (
        "refund",
        "received",
        order_id,
        "C-100",
    )
    assert item["execution"] == "running"
    await listed(visible_api, 0, order_id=order_id, status="completed")


async def test_complaints_are_listed_by_lot_before_a_worker_takes_them(
    visible_api: Api,
) -> None:
    lot = f"LOT-{uuid.uuid4().hex[:6]}"
    opened = []
    for other_lot in (lot, lot, f"{lot}-X"):
        response = await visible_api.call(
            "POST", "/v1/complaints", json=complaint(lot=other_lot).model_dump(mode="json")
        )
        assert response.status_code == 202, response.text
        opened.append(response.json()["case_id"])
    body = await listed(visible_api, 2, lot=lot, type="complaint")
    assert sorted(item["case_id"] for item in body["items"]) == sorted(opened[:2])
    assert {item["lot"] for item in body["items"]} == {lot}


async def test_case_listing_is_paged(visible_api: Api) -> None:
    order_id = f"ORD-P-{uuid.uuid4().hex[:6]}"
    opened = {(await visible_api.refund(order_id=order_id)).json()["case_id"] for _ in range(3)}
    await listed(visible_api, 3, order_id=order_id)
    first = await listed(visible_api, 2, order_id=order_id, page_size="2")
    assert first["next_page_token"]
    rest = await listed(
        visible_api, 1, order_id=order_id, page_size="2", page_token=first["next_page_token"]
    )
    assert rest["next_page_token"] is None
    assert {item["case_id"] for item in first["items"] + rest["items"]} == opened


async def test_listing_filter_must_be_an_id(api: Api) -> None:
    response = await api.call("GET", "/v1/cases?order_id=x' OR 1=1", as_="agent-amy")
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["order_id"]


# ---- approvals -------------------------------------------------------------------------------


@ON_BOTH_DATABASES
async def test_approvals_list_what_the_caller_may_decide_oldest_first(api: Api) -> None:
    older = await api.awaiting_approval("750.00")
    newer = await api.awaiting_approval("1100.00")
    mia = await api.call("GET", "/v1/approvals", as_="mgr-mia")
    assert [item["case_id"] for item in mia.json()["items"]] == [older, newer]
    sam = await api.call("GET", "/v1/approvals", as_="sup-sam")  # limit 1000.00
    assert [item["case_id"] for item in sam.json()["items"]] == [older]
    low = await api.call("GET", "/v1/approvals", as_="sup-low")  # limit 600.00
    assert low.json()["items"] == []


async def test_approval_list_item_says_what_and_since_when(api: Api) -> None:
    case_id = await api.awaiting_approval("750.00")
    [item] = (await api.call("GET", "/v1/approvals", as_="mgr-mia")).json()["items"]
    assert item["case_id"] == case_id
    assert (item["type"], item["order_id"], item["customer_id"]) == ("refund", "ORD-1001", "C-100")
    assert (item["amount"], item["reason"], item["requested_by"]) == (
        "750.00",
        "thawed on arrival",
        "agent-amy",
    )
    assert item["requested_at"] < item["escalate_at"] < item["due_at"]


async def test_agents_do_not_see_approvals(api: Api) -> None:
    response = await api.call("GET", "/v1/approvals", as_="agent-amy")
    assert response.status_code == 403
    assert response.json()["detail"] == "role 'agent' may not decide approvals"


# ---- decisions -------------------------------------------------------------------------------


async def test_approval_answers_with_the_approval_and_the_refund_is_paid(
    api: Api, shop: Shop
) -> None:
    case_id = await api.awaiting_approval("750.00")
    response = await api.decide(case_id, "approve", as_="mgr-mia", note="good customer")
    assert response.status_code == 200
    approval = response.json()
    assert (approval["status"], approval["decided_by"], approval["note"]) == (
        "approved",
        "mgr-mia",
        "good customer",
    )
    assert approval["amount"] == "750.00"
    case = await api.case_when(case_id, lambda c: c["outcome"] is not None)
    assert case["status"] == "completed"
    assert case["outcome"]["amount"] == "750.00"
    [paid] = ledger(shop)
    assert paid.case_id == case_id


async def test_rejection_closes_the_case_with_the_note(api: Api, shop: Shop) -> None:
    case_id = await api.awaiting_approval("750.00")
    response = await api.decide(case_id, "reject", as_="sup-sam", note="outside policy")
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    case = await api.case_when(case_id, lambda c: c["outcome"] is not None)
    assert case["status"] == "rejected"
    assert "outside policy" in case["outcome"]["reason"]
    assert ledger(shop) == []


async def test_decision_over_the_approvers_limit_is_403_with_the_reason(api: Api) -> None:
    case_id = await api.awaiting_approval("750.00")
    response = await api.decide(case_id, "approve", as_="sup-low")
    assert response.status_code == 403
    assert response.json() == {
        "error": "not_authorized",
        "detail": "sup-low's approval limit 600.00 is below 750.00",
    }
    case = await api.case(case_id)
    assert (case["status"], case["approval"]["status"]) == ("awaiting_approval", "pending")


async def test_requester_cannot_decide_their_own_case(api: Api) -> None:
    case_id = await api.awaiting_approval("750.00", requested_by="mgr-mia")
    response = await api.decide(case_id, "approve", as_="mgr-mia")
    assert response.status_code == 403
    assert "requested this case" in response.json()["detail"]


async def test_second_decision_is_409(api: Api) -> None:
    case_id = await api.awaiting_approval("750.00")
    await api.decide(case_id, "reject", as_="mgr-mia")
    response = await api.decide(case_id, "approve", as_="mgr-max")
    assert response.status_code == 409
    assert response.json()["error"] == "no_decision"
    assert "already rejected" in response.json()["detail"]


async def test_second_decision_after_the_case_closed_still_says_it_was_decided(
    api: Api, client: Client
) -> None:
    case_id = await api.awaiting_approval("750.00")
    await api.decide(case_id, "reject", as_="mgr-mia")
    await client.get_workflow_handle(case_id).result()
    response = await api.decide(case_id, "approve", as_="mgr-max")
    assert response.status_code == 409
    assert response.json() == {
        "error": "no_decision",
        "detail": "no decision is pending on this case (already rejected)",
    }


async def test_decision_on_a_closed_case_is_409(api: Api, client: Client) -> None:
    response = await api.refund("20.00")
    case_id = response.json()["case_id"]
    await client.get_workflow_handle(case_id).result()
    response = await api.decide(case_id, "approve", as_="mgr-mia")
    assert response.status_code == 409
    assert response.json() == {
        "error": "case_closed",
        "detail": f"case {case_id} is closed and takes no more messages",
    }


async def test_decision_on_an_unknown_case_is_404(api: Api) -> None:
    response = await api.decide("refund-nope", "approve", as_="mgr-mia")
    assert response.status_code == 404


async def test_decider_is_the_token_holder_not_a_body_field(api: Api) -> None:
    case_id = await api.awaiting_approval("750.00")
    response = await api.decide(case_id, "approve", as_="mgr-mia", approver_id="mgr-max")
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["approver_id"]


async def test_unknown_decision_is_422(api: Api) -> None:
    case_id = await api.awaiting_approval("750.00")
    response = await api.decide(case_id, "maybe", as_="mgr-mia")
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["decision"]


async def test_retried_decision_with_the_same_idempotency_key_answers_again(api: Api) -> None:
    case_id = await api.awaiting_approval("750.00")
    retry = {"Idempotency-Key": "click-1"}
    body = {"decision": "approve", "note": ""}
    path = f"/v1/cases/{case_id}/decision"
    first = await api.call("POST", path, as_="mgr-mia", json=body, headers=retry)
    again = await api.call("POST", path, as_="mgr-mia", json=body, headers=retry)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()


# ---- events a case waits for -----------------------------------------------------------------


async def test_store_credit_event_changes_the_refund_method(api: Api, shop: Shop) -> None:
    case_id = await api.awaiting_approval("750.00")
    response = await api.call(
        "POST",
        f"/v1/cases/{case_id}/events",
        as_="agent-amy",
        json={"type": "store_credit_chosen", "event_id": "evt-1"},
    )
    assert response.status_code == 202
    assert response.json() == {"case_id": case_id, "type": "store_credit_chosen", "accepted": True}
    await api.case_when(case_id, lambda c: c["refund_method"] == "store_credit")


async def test_unknown_case_event_is_422(api: Api) -> None:
    case_id = await api.awaiting_approval("750.00")
    response = await api.call(
        "POST", f"/v1/cases/{case_id}/events", json={"type": "cake_delivered", "event_id": "e"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "unknown_event_type"
    assert "store_credit_chosen" in response.json()["detail"]


async def test_case_event_missing_a_field_is_422(api: Api) -> None:
    case_id = await api.awaiting_approval("750.00")
    response = await api.call(
        "POST", f"/v1/cases/{case_id}/events", json={"type": "store_credit_chosen"}
    )
    assert response.status_code == 422
    assert response.json()["fields"] == [{"field": "event_id", "message": "Field required"}]


async def test_case_event_for_an_unknown_case_is_404(api: Api) -> None:
    response = await api.call(
        "POST",
        "/v1/cases/refund-nope/events",
        json={"type": "store_credit_chosen", "event_id": "evt-1"},
    )
    assert response.status_code == 404


# ---- health and outages ----------------------------------------------------------------------


async def test_healthz_answers_while_the_process_is_up(api: Api) -> None:
    response = await api.call("GET", "/healthz", as_=None)
    assert response.json() == {"status": "ok", "checks": {}}


async def test_readyz_checks_temporal_and_the_database(api: Api) -> None:
    response = await api.call("GET", "/readyz", as_=None)
    assert response.status_code == 200
    assert response.json()["checks"] == {"temporal": "ok", "database": "ok"}


async def test_readyz_is_503_when_temporal_is_unreachable(temporal_down: Api) -> None:
    response = await temporal_down.call("GET", "/readyz", as_=None)
    assert response.status_code == 503
    assert response.json()["checks"] == {"temporal": "unreachable", "database": "ok"}
    assert response.json()["error"] == "not_ready"


async def test_database_outage_is_503(client: Client, settings: Settings, tmp_path: Any) -> None:
    app = create_app(client, database_url=f"sqlite:///{tmp_path}/missing/dir/cases.db")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http:
        response = await http.get("/v1/approvals", headers={"Authorization": "Bearer x"})
        ready = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "error": "database_unavailable",
        "detail": "the database is not answering; retry",
    }
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "unreachable"


async def test_temporal_outage_is_503_and_the_retry_opens_the_case(
    api: Api, temporal_down: Api, shop: Shop
) -> None:
    body = refund_body("20.00")
    refused = await temporal_down.call("POST", "/v1/refunds", json=body)
    assert refused.status_code == 503
    assert refused.json()["error"] == "temporal_unavailable"
    assert api_requests(shop) == []
    retried = await api.call("POST", "/v1/refunds", json=body)
    assert retried.status_code == 202


async def test_unknown_path_answers_json(api: Api) -> None:
    response = await api.call("GET", "/v1/nothing-here", as_=None)
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not Found"}


async def test_unexpected_failure_answers_json_without_a_trace(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Store, staff_id: str) -> None:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(Store, "pending_approvals", broken)
    response = await api.call("GET", "/v1/approvals", as_="mgr-mia")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert response.headers["X-Request-Id"] in response.json()["detail"]
    assert "internal detail" not in response.text
    assert "Traceback" not in response.text


async def test_openapi_documents_the_start_bodies(api: Api) -> None:
    schema = (await api.call("GET", "/openapi.json", as_=None)).json()
    body = schema["paths"]["/v1/refunds"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/RefundRequest"}
    assert {"RefundRequest", "CloudEvent"} <= set(schema["components"]["schemas"])
