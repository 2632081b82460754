"""Customer data stays private: Temporal stores only ciphertext, keys rotate under open cases,
and the codec endpoint shows staff (and only staff) what the cases hold."""

from __future__ import annotations

import asyncio
import base64
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.cases import CaseActivities
from infra.codec import ENCODING, KEY_ID, UnknownKeyError, codec_for
from settings import Settings
from starter import case_state, decide, start_refund
from tests.case_helpers import state_of
from tests.conftest import Cases, Shop
from tests.privacy_helpers import (
    CUSTOMER_FRAGMENTS,
    CUSTOMER_TEXT,
    client_with,
    codec_of,
    decoded_bytes,
    history_bytes,
    key_ids,
    keyring,
    raw_history,
    stored_payloads,
)
from tests.recorded_histories import Shelf
from worker import build_worker
from workflows import visibility
from workflows.models import CaseStatus, Decision, DecisionKind, Outcome, RefundRequest
from workflows.refund import RefundWorkflow
from workflows.sandbox import workflow_runner

UI_ORIGIN = "http://127.0.0.1:8233"  # the dev server's Web UI on DEV_SERVER_UI_PORT's default


def refund(amount: str = "750.00") -> RefundRequest:
    return RefundRequest(
        request_id=uuid.uuid4().hex[:10],
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal(amount),
        reason=CUSTOMER_TEXT,
        requested_by="agent-amy",
    )


async def approved_case(client: Client, cases: Cases) -> WorkflowHandle[Any, Any]:
    """A refund over the limit, approved with a note naming the customer, and completed."""
    handle = await cases.refund(refund())
    await state_of(client, handle.id, type(await case_state(client, handle.id)), _awaiting)
    await decide(
        client,
        handle.id,
        Decision(
            approver_id="sup-sam",
            decision=DecisionKind.APPROVE,
            note="Ada (ada@example.com) is a regular",
        ),
    )
    outcome: Outcome = await handle.result()
    assert outcome.status is CaseStatus.COMPLETED
    return handle


async def workflow_task_failure(client: Client, case_id: str) -> str:
    """The message of the case's first failed workflow task, once there is one."""
    for _ in range(200):
        async for event in client.get_workflow_handle(case_id).fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                return str(event.workflow_task_failed_event_attributes.failure.message)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no workflow task of {case_id} failed")


def _awaiting(state: Any) -> bool:
    return bool(state.status is CaseStatus.AWAITING_APPROVAL)


async def test_history_read_without_the_key_holds_no_customer_text(
    client: Client, cases: Cases
) -> None:
    handle = await approved_case(client, cases)

    history = await raw_history(client, handle)

    stored = history_bytes(history)
    for fragment in CUSTOMER_FRAGMENTS:
        assert fragment.encode() not in stored, fragment
    payloads = await stored_payloads(history)
    assert payloads and all(p.metadata["encoding"] == ENCODING for p in payloads)
    assert key_ids(payloads) == {"test-1"}
    # The same history, decrypted, does hold them: the check above looked in the right place.
    readable = await decoded_bytes(history, codec_for(Settings()))
    assert all(fragment.encode() in readable for fragment in CUSTOMER_FRAGMENTS)


async def test_a_recorded_history_is_kept_decrypted_and_replays_without_any_key(
    client: Client, cases: Cases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = await approved_case(client, cases)
    shelf = Shelf(tmp_path, RefundWorkflow)
    monkeypatch.setenv("REPLAY_RECORD", "1")

    await shelf.keep_if_recording("approved", await handle.fetch_history())

    [kept] = shelf.recorded()
    assert "binary/encrypted" not in kept.read_text()
    history = shelf.load(kept)
    assert CUSTOMER_TEXT.encode() in history_bytes(history)
    replayer = Replayer(
        workflows=[RefundWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    assert (await replayer.replay_workflow(history)).replay_failure is None


async def test_a_case_opened_under_key_1_finishes_under_key_2(
    dev_env: WorkflowEnvironment, activities: CaseActivities, settings: Settings, shop: Shop
) -> None:
    """A worker restart, on the dev server (the time-skipping server never hands a stopped
    worker's cached cases to a new worker)."""
    env = dev_env
    first = keyring("k1")
    second = keyring("k2", ("k1", first.keys["k1"]))
    before, after = (
        client_with(env.client, codec_of(first)),
        client_with(env.client, codec_of(second)),
    )
    tracker = Cases(before, settings.task_queue)
    try:
        async with build_worker(before, activities=activities, settings=settings):
            started = await start_refund(before, refund(), task_queue=settings.task_queue)
            tracker.handles.append(started.handle)
            await state_of(
                before, started.case_id, type(await case_state(before, started.case_id)), _awaiting
            )

        # The worker restarts with key 2 current and key 1 still known, as the runbook says.
        async with build_worker(after, activities=activities, settings=settings):
            await decide(
                after,
                started.case_id,
                Decision(approver_id="sup-sam", decision=DecisionKind.APPROVE),
            )
            outcome = await after.get_workflow_handle(started.case_id, result_type=Outcome).result()

        assert outcome.status is CaseStatus.COMPLETED
        payloads = await stored_payloads(await raw_history(env.client, started.handle))
        assert key_ids(payloads) == {"k1", "k2"}
        # Key 1 alone can no longer read how it ended.
        try:
            await before.get_workflow_handle(started.case_id).result()
        except UnknownKeyError as err:
            assert "key 'k2'" in str(err)
        else:
            raise AssertionError("a client without key 2 read the outcome")
    finally:
        await tracker.close_all()


async def test_a_worker_without_the_case_key_leaves_it_waiting_until_one_has_it(
    dev_env: WorkflowEnvironment, activities: CaseActivities, settings: Settings, shop: Shop
) -> None:
    first = keyring("k1")
    starter = client_with(dev_env.client, codec_of(first))
    stranger = client_with(dev_env.client, codec_of(keyring("k2")))
    keeper = client_with(dev_env.client, codec_of(keyring("k2", ("k1", first.keys["k1"]))))
    tracker = Cases(starter, settings.task_queue)
    try:
        started = await start_refund(starter, refund("20.00"), task_queue=settings.task_queue)
        tracker.handles.append(started.handle)

        async with build_worker(stranger, activities=activities, settings=settings):
            refusal = await workflow_task_failure(dev_env.client, started.case_id)
        assert "payload encrypted under key 'k1', which this process does not hold" in refusal

        async with build_worker(keeper, activities=activities, settings=settings):
            handle = keeper.get_workflow_handle(started.case_id, result_type=Outcome)
            outcome = await handle.result()
        assert outcome.status is CaseStatus.COMPLETED
    finally:
        await tracker.close_all()


async def test_the_codec_endpoint_decodes_what_the_worker_encoded(
    client: Client, cases: Cases, http: httpx.AsyncClient, shop: Shop
) -> None:
    handle = await approved_case(client, cases)
    payloads = await stored_payloads(await raw_history(client, handle))
    body = {"payloads": [_json(p) for p in payloads]}

    answer = await http.post(
        "/codec/decode",
        json=body,
        headers={**shop.auth("agent-amy"), "X-Namespace": client.namespace},
    )

    assert answer.status_code == 200, answer.text
    expected = await codec_for(Settings()).decode(payloads)
    assert answer.json()["payloads"] == [_json(p) for p in expected]
    encodings = {base64.b64decode(p["metadata"]["encoding"]) for p in answer.json()["payloads"]}
    assert ENCODING not in encodings
    decoded = [base64.b64decode(p["data"]) for p in answer.json()["payloads"]]
    assert any(CUSTOMER_TEXT.encode() in data for data in decoded)


async def test_the_codec_endpoint_encodes_under_the_current_key(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    plain = {"metadata": {"encoding": _b64(b"json/plain")}, "data": _b64(b'"late"')}

    answer = await http.post(
        "/codec/encode", json={"payloads": [plain]}, headers=shop.auth("backend")
    )

    [sealed] = answer.json()["payloads"]
    assert base64.b64decode(sealed["metadata"][KEY_ID]) == b"test-1"
    back = await http.post(
        "/codec/decode", json={"payloads": [sealed]}, headers=shop.auth("backend")
    )
    assert back.json()["payloads"] == [plain]


async def test_the_codec_endpoint_refuses_without_a_staff_token(
    client: Client, http: httpx.AsyncClient, shop: Shop
) -> None:
    body: dict[str, list[Any]] = {"payloads": []}

    missing = await http.post("/codec/decode", json=body)
    wrong = await http.post("/codec/decode", json=body, headers={"Authorization": "Bearer nope"})
    other_namespace = await http.post(
        "/codec/decode", json=body, headers={**shop.auth("agent-amy"), "X-Namespace": "elsewhere"}
    )

    assert (missing.status_code, missing.json()["error"]) == (401, "unauthenticated")
    assert wrong.status_code == 401
    assert other_namespace.status_code == 403
    assert "serves namespace" in other_namespace.json()["detail"]


async def test_a_payload_under_a_key_the_service_lacks_is_a_clear_422(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    [sealed] = await codec_of(keyring("gone")).encode([Payload(data=b"x")])

    answer = await http.post(
        "/codec/decode", json={"payloads": [_json(sealed)]}, headers=shop.auth("agent-amy")
    )

    assert answer.status_code == 422
    assert "payloads[0]: payload encrypted under key 'gone'" in answer.json()["detail"]


async def test_a_browser_signed_in_for_the_ui_decodes_with_its_session_cookie(
    http: httpx.AsyncClient, shop: Shop
) -> None:
    opened = await http.post("/codec/session", headers=shop.auth("mgr-mia"))
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("casework_codec=") and "HttpOnly" in cookie
    assert "Path=/codec" in cookie and "SameSite=strict" in cookie

    answer = await http.post(
        "/codec/decode", json={"payloads": []}, headers={"Origin": UI_ORIGIN}
    )  # the client sends the cookie back, as the browser does for the UI

    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == UI_ORIGIN
    assert answer.headers["access-control-allow-credentials"] == "true"
    await http.delete("/codec/session")
    http.cookies.clear()
    assert (await http.post("/codec/decode", json={"payloads": []})).status_code == 401


async def test_cors_preflight_answers_the_ui_origin_on_the_codec_only(
    http: httpx.AsyncClient,
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }

    ui = await http.options("/codec/decode", headers={"Origin": UI_ORIGIN, **preflight})
    stranger = await http.options(
        "/codec/decode", headers={"Origin": "http://evil.example", **preflight}
    )
    elsewhere = await http.options("/v1/approvals", headers={"Origin": UI_ORIGIN, **preflight})

    assert ui.status_code == 200
    assert ui.headers["access-control-allow-origin"] == UI_ORIGIN
    assert ui.headers["access-control-allow-credentials"] == "true"
    assert "x-namespace" in ui.headers["access-control-allow-headers"].lower()
    assert stranger.status_code == 400
    assert "access-control-allow-origin" not in stranger.headers
    assert "access-control-allow-origin" not in elsewhere.headers


# ---- search attributes: indexed in clear, so ids, amounts and statuses only ---------------

ALLOWED_SEARCH_ATTRIBUTES = {
    "CaseType": "status",
    "CaseStatus": "status",
    "OrderId": "id",
    "CustomerId": "id",
    "Amount": "amount",
    "RaNumber": "id",
    "Lot": "id",
    "PromisedBy": "date",
}


def test_every_search_attribute_is_an_id_an_amount_a_status_or_a_date() -> None:
    declared = {key.name for key in visibility.ALL_KEYS}
    defined = {
        value.name for value in vars(visibility).values() if isinstance(value, SearchAttributeKey)
    }

    assert declared == defined == set(ALLOWED_SEARCH_ATTRIBUTES), (
        "a new search attribute is stored in clear: add it here only if it holds no customer "
        "text (an id, an amount, a status or a date)"
    )


async def test_a_case_search_attributes_hold_no_customer_text(client: Client, cases: Cases) -> None:
    handle = await approved_case(client, cases)

    attributes = (await handle.describe()).typed_search_attributes

    # TemporalChangeVersion is the SDK's own: the names of the patches the case went through.
    allowed = {*ALLOWED_SEARCH_ATTRIBUTES, "TemporalChangeVersion"}
    assert {pair.key.name for pair in attributes} <= allowed
    values = " ".join(str(pair.value) for pair in attributes)
    for fragment in CUSTOMER_FRAGMENTS:
        assert fragment not in values


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _json(payload: Any) -> dict[str, Any]:
    return {
        "metadata": {name: _b64(value) for name, value in sorted(payload.metadata.items())},
        "data": _b64(payload.data),
    }
