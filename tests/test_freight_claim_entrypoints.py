"""Filing freight claims and relaying the carrier's settlement over HTTP, CloudEvents and the
CLI. The routes derive from the registry entry; these pin the claim's own contract: bad input
refused with 422 and nothing started, the settlement from the backend only, as the caller."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from settings import Settings
from starter import case_exists
from tests.case_helpers import audit, eventually
from tests.conftest import Cases, Shop
from tests.freight_claim_helpers import PHOTOS, claim_state, shipped_order, status_of
from workflows.models import CaseStatus


def body(order_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": order_id,
        "customer_id": "C-100",
        "kind": "damaged",
        "amount": "120.00",
        "photos": list(PHOTOS),
        "tracking_number": "1Z999",
        "description": "Crushed box",
        "requested_by": "agent-amy",
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"photos": ["ftp://photos.example.com/1.jpg"]}, "photos"),
        ({"photos": [f"https://p.example.com/{i}.jpg" for i in range(11)]}, "photos"),
        ({"resolution": "replacement"}, "skus"),
        ({"skus": ["BISON-RIBEYE"]}, "skus"),
        ({"kind": "stolen"}, "kind"),
        ({"amount": "0.00"}, "amount"),
        ({"linked_case_id": "rush-someone-elses"}, "linked_case_id"),
    ],
    ids=["not-http", "eleven-photos", "replacement-without-skus", "skus-with-refund", "kind",
         "zero", "linked-by-a-caller"],
)  # fmt: skip
async def test_bad_freight_claims_are_422_and_start_nothing(
    http: httpx.AsyncClient, client: Client, shop: Shop, fields: dict[str, Any], field: str
) -> None:
    request = body("ORD-1001", **fields)
    response = await http.post("/v1/freight-claims", json=request, headers=shop.auth("backend"))

    assert response.status_code == 422, response.text
    assert field in response.text
    assert not await case_exists(client, f"freight-claim-{request['request_id']}")


async def test_a_freight_claim_filed_cloud_event_opens_a_case(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    event = {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex[:10]}",
        "source": "/shop/claims",
        "type": "freight.claim_filed",
        "data": body(shipped_order(shop), kind="lost"),
    }
    response = await http.post(
        "/v1/events",
        content=json.dumps(event),
        headers={"Content-Type": "application/cloudevents+json", **shop.auth("backend")},
    )

    assert response.status_code == 202, response.text
    case_id = response.json()["case_id"]
    assert case_id.startswith("freight-claim-")
    cases.handles.append(client.get_workflow_handle(case_id))
    state = await status_of(client, case_id, CaseStatus.AWAITING_CARRIER)
    assert state.kind == "lost" and state.photos == PHOTOS


async def test_the_carrier_settlement_comes_from_the_backend_only_and_is_recorded_as_the_caller(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    response = await http.post(
        "/v1/freight-claims", json=body(shipped_order(shop)), headers=shop.auth("backend")
    )
    assert response.status_code == 202, response.text
    case_id = response.json()["case_id"]
    cases.handles.append(client.get_workflow_handle(case_id))
    await status_of(client, case_id, CaseStatus.AWAITING_CARRIER)
    settled = {"type": "carrier_settled", "event_id": "cs-1", "settled_amount": "110.00"}

    refused = await http.post(
        f"/v1/cases/{case_id}/events", json=settled, headers=shop.auth("agent-amy")
    )
    taken = await http.post(
        f"/v1/cases/{case_id}/events", json=settled, headers=shop.auth("backend")
    )

    assert refused.status_code == 403 and "backend" in refused.json()["detail"]
    assert taken.status_code == 202, taken.text
    final = await claim_state(client, case_id, lambda s: s.status is CaseStatus.COMPLETED)
    assert final.settled_amount == Decimal("110.00")
    [line] = await eventually(
        lambda: [a for a in audit(shop, case_id) if a.event == "carrier_settled_reported"]
    )
    assert line.actor == "backend"


async def test_a_freight_claim_filed_from_the_command_line(
    client: Client, cases: Cases, settings: Settings, shop: Shop
) -> None:
    request_id = uuid.uuid4().hex[:10]
    order_id = shipped_order(shop)
    variables = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CASEWORK_")},
        "DATABASE_URL": settings.database_url,
        "TASK_QUEUE": settings.task_queue,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "CASEWORK_CREDENTIALS": "/nonexistent/casework-credentials.json",
    }
    started = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable, "-m", "starter", "freight-claim", "--order", order_id,
            "--customer", "C-100", "--kind", "damaged", "--amount", "80.00",
            "--resolution", "replacement", "--skus", "BISON-RIBEYE", "--skus", "ELK-SAUSAGE",
            "--photos", PHOTOS[0], "--description", "Crushed box",
            "--requested-by", "agent-amy", "--request-id", request_id,
        ],
        env=variables,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip

    assert started.returncode == 0, started.stderr
    case_id = f"freight-claim-{request_id}"
    cases.handles.append(client.get_workflow_handle(case_id))
    state = await status_of(client, case_id, CaseStatus.AWAITING_CARRIER)
    assert state.skus == ("BISON-RIBEYE", "ELK-SAUSAGE")
    assert len(state.replacement_order_ids) == 2


async def test_accounting_closes_a_claim_only_once_it_has_it_and_only_accounting_may(
    http: httpx.AsyncClient, client: Client, cases: Cases, shop: Shop
) -> None:
    response = await http.post(
        "/v1/freight-claims", json=body(shipped_order(shop)), headers=shop.auth("backend")
    )
    case_id = response.json()["case_id"]
    cases.handles.append(client.get_workflow_handle(case_id))
    await status_of(client, case_id, CaseStatus.AWAITING_CARRIER)
    closing = {"type": "accounting_closed", "event_id": "acct-1", "note": "written off"}

    forbidden = await http.post(
        f"/v1/cases/{case_id}/events", json=closing, headers=shop.auth("mgr-mia")
    )
    early = await http.post(
        f"/v1/cases/{case_id}/events", json=closing, headers=shop.auth("acct-ana")
    )

    assert forbidden.status_code == 403 and "accounting" in forbidden.json()["detail"]
    assert early.status_code == 409, early.text
    assert early.json()["error"] == "not_with_accounting"
    state = await status_of(client, case_id, CaseStatus.AWAITING_CARRIER)
    assert state.outcome is None
