"""Opening and driving a return from the command line and over HTTP."""

from __future__ import annotations

import json
import uuid

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from starter import case_exists, case_state
from tests.case_helpers import wait_for_status
from tests.cli_helpers import cli
from tests.conftest import Cases, Shop
from tests.refund_helpers import ledger
from tests.return_helpers import delivered_order
from workflows.models import CaseStatus
from workflows.return_models import ReturnState


async def test_return_driven_from_the_command_line(
    env: WorkflowEnvironment, client: Client, cases: Cases, settings: Settings, shop: Shop
) -> None:
    as_wes = {"CASEWORK_TOKEN": shop.tokens["warehouse-wes"]}
    order_id = await delivered_order(env, shop)
    request_id = uuid.uuid4().hex[:10]
    started = await cli(
        "return", "--order", order_id, "--customer", "C-100", "--item", "BISON-RIBEYE=2",
        "--reason", "wrong cut", "--requested-by", "agent-amy", "--request-id", request_id,
        env=env, settings=settings,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    case_id = f"return-{request_id}"
    handle = client.get_workflow_handle(case_id)
    cases.handles.append(handle)
    state = await wait_for_status(client, case_id, CaseStatus.AWAITING_RETURN)
    assert isinstance(state, ReturnState)

    wrong = json.dumps({"ra_number": "RA-1999-000001"})
    refused = await cli(
        "event", case_id, "package_received", "--data", wrong, env=env, settings=settings,
        extra_env=as_wes,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "refused: RA-1999-000001 is not this case's RA" in refused.stderr
    status = await cli("status", case_id, env=env, settings=settings)
    assert f"ra_number: {state.ra_number}" in status.stdout

    scanned = json.dumps({"ra_number": state.ra_number})
    received = await cli(
        "event", case_id, "package_received", "--data", scanned, env=env, settings=settings,
        extra_env=as_wes,
    )  # fmt: skip
    assert received.returncode == 0, received.stderr
    await wait_for_status(client, case_id, CaseStatus.INSPECTING)
    inspected = await cli(
        "event", case_id, "inspection_completed", "--data", '{"passed": true}',
        env=env, settings=settings, extra_env=as_wes,
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    await handle.result()
    [entry] = ledger(shop)
    assert str(entry.amount) == "300.00"


async def test_return_item_that_is_not_sku_equals_quantity_is_refused(
    settings: Settings,
) -> None:
    result = await cli(
        "return", "--order", "ORD-1", "--customer", "C-100", "--item", "BISON-RIBEYE=two",
        "--reason", "wrong cut", "--requested-by", "agent-amy",
        settings=settings,
    )  # fmt: skip
    assert result.returncode == 2
    assert "not SKU=QUANTITY: 'BISON-RIBEYE=two'" in result.stderr


async def open_return_over_http(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop, http: httpx.AsyncClient
) -> tuple[str, ReturnState]:
    """POST /v1/returns as the backend; the case id once it waits for the package."""
    body = {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": await delivered_order(env, shop),
        "customer_id": "C-100",
        "items": [{"sku": "ELK-JERKY", "quantity": 3}],
        "reason": "not as described",
        "requested_by": "agent-amy",
    }
    response = await http.post("/v1/returns", json=body, headers=shop.auth("backend"))
    assert response.status_code == 202, response.text
    case_id = str(response.json()["case_id"])
    assert case_id == f"return-{body['request_id']}"
    cases.handles.append(client.get_workflow_handle(case_id))
    state = await wait_for_status(client, case_id, CaseStatus.AWAITING_RETURN)
    assert isinstance(state, ReturnState)
    return case_id, state


async def test_return_opened_over_http(
    env: WorkflowEnvironment,
    client: Client,
    cases: Cases,
    shop: Shop,
    http: httpx.AsyncClient,
) -> None:
    case_id, state = await open_return_over_http(env, client, cases, shop, http)
    event = {
        "type": "package_received",
        "event_id": "scan-1",
        "ra_number": state.ra_number,
    }
    sent = await http.post(
        f"/v1/cases/{case_id}/events", json=event, headers=shop.auth("warehouse-wes")
    )
    assert sent.status_code == 202, sent.text
    await wait_for_status(client, case_id, CaseStatus.INSPECTING)


async def test_package_with_a_wrong_ra_number_is_refused_over_http(
    env: WorkflowEnvironment,
    client: Client,
    cases: Cases,
    shop: Shop,
    http: httpx.AsyncClient,
) -> None:
    case_id, _ = await open_return_over_http(env, client, cases, shop, http)
    warehouse = shop.auth("warehouse-wes")

    wrong = {"type": "package_received", "event_id": "scan-9", "ra_number": "RA-1999-000001"}
    refused = await http.post(f"/v1/cases/{case_id}/events", json=wrong, headers=warehouse)
    assert refused.status_code == 404, refused.text
    assert refused.json()["error"] == "unknown_ra"
    assert "RA-1999-000001 is not this case's RA" in refused.json()["detail"]
    assert (await case_state(client, case_id)).status is CaseStatus.AWAITING_RETURN

    early = {"type": "inspection_completed", "event_id": "insp-1", "passed": True}
    conflict = await http.post(f"/v1/cases/{case_id}/events", json=early, headers=warehouse)
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["error"] == "not_inspecting"


async def test_a_caller_cannot_link_a_return_to_another_case(
    http: httpx.AsyncClient, client: Client, shop: Shop
) -> None:
    """Only the case that hands work over (a cancellation) links the return to itself."""
    body = {
        "request_id": "req-linked-1",
        "order_id": "ORD-1001",
        "customer_id": "C-100",
        "items": [{"sku": "BISON-RIBEYE", "quantity": 1}],
        "reason": "wrong cut",
        "requested_by": "agent-amy",
        "linked_case_id": "cancellation-someone-elses",
    }
    response = await http.post("/v1/returns", json=body, headers=shop.auth("backend"))

    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == "linked_case_id"
    assert not await case_exists(client, "return-req-linked-1")
