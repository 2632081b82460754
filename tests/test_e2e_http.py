"""End to end over real HTTP: uvicorn, the Temporal dev server and the production worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

import starter.api.app
from activities.cases import CaseActivities
from infra.db import LedgerEntry
from settings import Settings, get_settings
from starter.api import create_app, create_production_app
from tests.conftest import Shop
from tests.http_helpers import serve, terminate_if_running
from worker import build_worker


async def eventually(
    probe: Callable[[], Any], ready: Callable[[Any], bool], *, seconds: float = 20
) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await probe()
        if ready(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never ready; last: {value}")
        await asyncio.sleep(0.1)


async def test_refund_over_http_waits_for_a_manager_then_pays(
    dev_env: WorkflowEnvironment,
    shop: Shop,
    activities: CaseActivities,
    settings: Settings,
    database_url: str,
) -> None:
    client = dev_env.client
    app = create_app(client, database_url=database_url, settings=settings)
    backend = {"Authorization": f"Bearer {shop.tokens['backend']}"}
    manager = {"Authorization": f"Bearer {shop.tokens['mgr-mia']}"}
    request_id = f"req-{uuid.uuid4().hex[:10]}"
    order_id = f"ORD-E2E-{uuid.uuid4().hex[:6]}"
    shop.add_order(order_id, "900.00")
    case_id = f"refund-{request_id}"
    try:
        async with (
            build_worker(client, activities=activities, settings=settings),
            serve(app) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            started = await http.post(
                "/v1/refunds",
                headers=backend,
                json={
                    "request_id": request_id,
                    "order_id": order_id,
                    "customer_id": "C-100",
                    "amount": "750.00",
                    "reason": "arrived thawed",
                    "requested_by": "agent-amy",
                },
            )
            assert started.status_code == 202, started.text
            assert started.json()["case_id"] == case_id

            approvals = await eventually(
                lambda: http.get("/v1/approvals", headers=manager),
                lambda r: any(i["case_id"] == case_id for i in r.json()["items"]),
            )
            assert approvals.status_code == 200

            decided = await http.post(
                f"/v1/cases/{case_id}/decision",
                headers=manager,
                json={"decision": "approve", "note": "fine"},
            )
            assert decided.status_code == 200, decided.text
            assert decided.json()["decided_by"] == "mgr-mia"

            case = await eventually(
                lambda: http.get(f"/v1/cases/{case_id}", headers=manager),
                lambda r: r.json()["outcome"] is not None,
            )
            assert case.json()["status"] == "completed"
            assert case.json()["outcome"]["amount"] == "750.00"

            listed = await eventually(
                lambda: http.get(
                    "/v1/cases",
                    params={"order_id": order_id, "status": "completed"},
                    headers=manager,
                ),
                lambda r: len(r.json()["items"]) == 1,
            )
            [summary] = listed.json()["items"]
            assert (summary["case_id"], summary["type"]) == (case_id, "refund")

            ready = await http.get("/readyz")
            assert ready.status_code == 200
    finally:
        await terminate_if_running(client, case_id)

    with shop.db.transaction() as session:
        [paid] = session.scalars(select(LedgerEntry).where(LedgerEntry.case_id == case_id))
    assert paid.amount == Decimal("750.00")


async def test_production_app_connects_to_temporal_when_it_starts(
    dev_env: WorkflowEnvironment, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("DATABASE_URL", database_url)
    # Logging is the test runner's; the factory would otherwise take over the root logger.
    monkeypatch.setattr(starter.api.app, "configure_logging", lambda *_: None)
    get_settings.cache_clear()
    try:
        async with (
            serve(create_production_app()) as base_url,
            httpx.AsyncClient(base_url=base_url) as http,
        ):
            ready = await http.get("/readyz")
            page = await http.get("/work")
    finally:
        get_settings.cache_clear()
    assert ready.json() == {"status": "ok", "checks": {"temporal": "ok", "database": "ok"}}
    assert page.status_code == 200
