"""Metrics, specified by scraping them: the worker's Prometheus endpoint (Temporal's own and
the product's casework_*) and the API's GET /metrics, after known cases ran.

The worker here is the production one (``run_worker``) on a client whose runtime serves
Prometheus on a free port, over the time-skipping server and a real database.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.testing import WorkflowEnvironment

from activities.mail import MailRetry, OutboxDispatcher, SmtpTransport
from activities.pending_approvals import Pending, PendingApprovalsGauge
from infra.db import Approval, Case, Database, OutboxEmail
from infra.temporal import DATA_CONVERTER, prometheus_runtime
from settings import Settings, SmtpSettings
from starter.api import create_app
from tests.conftest import Cases, Shop
from tests.devstack import free_port
from tests.metrics_helpers import scrape, scraped_until
from worker import metrics_runtime, run_worker

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


@dataclass
class MeteredWorker:
    """The production worker, its metrics URL, and a tracker of the cases it runs."""

    url: str
    cases: Cases


@pytest.fixture
async def metered_worker(
    env: WorkflowEnvironment, shop: Shop, settings: Settings
) -> AsyncIterator[MeteredWorker]:
    port = free_port()
    settings = settings.model_copy(
        update={"worker_metrics_port": port, "approvals_gauge_every": timedelta(seconds=0.1)}
    )
    runtime = metrics_runtime(settings)
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=DATA_CONVERTER,
        runtime=runtime,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(run_worker(client, settings, stop))
    # Cases are started and awaited through the environment's client (it lets time skip).
    tracker = Cases(env.client, settings.task_queue)
    try:
        yield MeteredWorker(f"http://127.0.0.1:{port}/metrics", tracker)
    finally:
        await tracker.close_all()
        stop.set()
        await running


@pytest.fixture
async def api(
    env: WorkflowEnvironment, shop: Shop, settings: Settings, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API over the test's database and task queue (no worker of its own)."""
    app = create_app(env.client, database_url=database_url, settings=settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://casework.test", timeout=30
    ) as http:
        yield http


def refund_body(amount: str, order_id: str = "ORD-1001", customer_id: str = "C-100") -> Any:
    return {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": order_id,
        "customer_id": customer_id,
        "amount": amount,
        "reason": "thawed on arrival",
        "requested_by": "agent-amy",
    }


async def open_refund(
    api: httpx.AsyncClient, shop: Shop, worker: MeteredWorker, body: dict[str, str]
) -> str:
    response = await api.post("/v1/refunds", json=body, headers=shop.auth("backend"))
    assert response.status_code == 202, response.text
    case_id: str = response.json()["case_id"]
    worker.cases.handles.append(worker.cases.client.get_workflow_handle(case_id))
    return case_id


async def status_of(api: httpx.AsyncClient, shop: Shop, case_id: str, wanted: str) -> None:
    for _ in range(400):
        response = await api.get(f"/v1/cases/{case_id}", headers=shop.auth("agent-amy"))
        if response.json().get("status") == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{case_id} never became {wanted}: {response.json()}")


def outbox_per_template(db: Database) -> Counter[str]:
    with db.read() as session:
        return Counter(session.scalars(select(OutboxEmail.template)))


async def test_a_run_of_refunds_moves_the_worker_and_api_counters_by_what_happened(
    env: WorkflowEnvironment,
    metered_worker: MeteredWorker,
    api: httpx.AsyncClient,
    shop: Shop,
    settings: Settings,
) -> None:
    worker = metered_worker
    before = await scrape(worker.url)
    api_before = await scrape("/metrics", api)

    # One under the threshold (completed), one to a closed card (its payment fails for good:
    # needs_attention), one over the threshold (waits for a manager, approved, completed).
    small = await open_refund(api, shop, worker, refund_body("100.00"))
    await worker.cases.client.get_workflow_handle(small).result()
    closed_card = await open_refund(
        api, shop, worker, refund_body("100.00", order_id="ORD-2001", customer_id="C-200")
    )
    await worker.cases.client.get_workflow_handle(closed_card).result()
    large = await open_refund(api, shop, worker, refund_body("750.00"))
    await status_of(api, shop, large, "awaiting_approval")

    waiting = await scraped_until(
        worker.url,
        lambda s: s.value("casework_approvals_pending", procedure="refund") == 1,
    )
    assert waiting.value("casework_approvals_pending", procedure="return") == 0
    assert waiting.value("casework_approvals_oldest_pending_seconds", procedure="refund") >= 0

    decided = await api.post(
        f"/v1/cases/{large}/decision",
        json={"decision": "approve", "note": "photos checked"},
        headers=shop.auth("sup-sam"),
    )
    assert decided.status_code == 200, decided.text
    await worker.cases.client.get_workflow_handle(large).result()

    queued = outbox_per_template(shop.db)
    after = await scraped_until(
        worker.url,
        lambda s: (
            s.value("casework_approvals_pending", procedure="refund") == 0
            and s.value("casework_cases_closed", procedure="refund")
            - before.value("casework_cases_closed", procedure="refund")
            == 3
            and s.value("casework_emails_queued") - before.value("casework_emails_queued")
            == sum(queued.values())
        ),
    )

    def moved(family: str, sample: str | None = None, **labels: str) -> float:
        return after.value(family, sample, **labels) - before.value(family, sample, **labels)

    assert moved("casework_cases_opened", procedure="refund") == 3
    assert moved("casework_cases_closed", procedure="refund", outcome="completed") == 2
    assert moved("casework_cases_closed", procedure="refund", outcome="needs_attention") == 1
    decision = "casework_approval_decision_seconds"
    assert moved(decision, f"{decision}_count", procedure="refund", decision="approved") == 1
    assert moved(decision, f"{decision}_count", decision="rejected") == 0
    assert moved(decision, f"{decision}_sum", procedure="refund") >= 0
    # Every email in the outbox was counted once, under its template.
    assert queued["approval_requested"] == 3  # one per eligible approver (limit >= 750)
    for template, count in queued.items():
        assert moved("casework_emails_queued", template=template) == count, template
    # Activity failures are Temporal's own counter, labelled with the activity type.
    failed = "temporal_activity_execution_failed"
    assert moved(failed, activity_type="issue_refund") == 1
    assert "issue_refund" in after.label_values(failed, "activity_type")
    # The SDK's metrics are on the same endpoint (a workflow completed, tasks polled).
    assert moved("temporal_workflow_completed", workflow_type="RefundWorkflow") == 3

    # The API counted every request under its route as declared, never its raw path.
    api_after = await scrape("/metrics", api)

    def api_moved(**labels: str) -> float:
        family = "casework_api_requests"
        return api_after.value(family, **labels) - api_before.value(family, **labels)

    assert api_moved(method="POST", route="/v1/refunds", status="202") == 3
    assert api_moved(method="POST", route="/v1/cases/{case_id}/decision", status="200") == 1
    assert api_moved(route="/v1/cases/{case_id}", status="200") >= 1
    assert api_moved(route="/metrics", status="200") == 1  # the first scrape
    assert not any(
        large in route for route in api_after.label_values("casework_api_requests", "route")
    )
    latency = "casework_api_request_seconds"
    assert (
        api_after.value(latency, f"{latency}_count", route="/v1/refunds")
        - api_before.value(latency, f"{latency}_count", route="/v1/refunds")
        == 3
    )


async def test_the_api_labels_requests_by_route_template_and_status(
    api: httpx.AsyncClient, shop: Shop
) -> None:
    for case_id in ("refund-no-such-1", "refund-no-such-2"):
        response = await api.get(f"/v1/cases/{case_id}", headers=shop.auth("agent-amy"))
        assert response.status_code == 404
    assert (await api.get("/v1/approvals")).status_code == 401  # no token
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/v1/nowhere/ORD-1001")).status_code == 404

    scraped = await scrape("/metrics", api)

    def count(**labels: str) -> float:
        return scraped.value("casework_api_requests", **labels)

    assert count(method="GET", route="/v1/cases/{case_id}", status="404") == 2
    assert count(method="GET", route="/v1/approvals", status="401") == 1
    assert count(method="GET", route="/healthz", status="200") == 1
    assert count(method="GET", route="unmatched", status="404") == 1
    routes = scraped.label_values("casework_api_requests", "route")
    assert not {route for route in routes if "no-such" in route or "ORD-1001" in route}
    latency = "casework_api_request_seconds"
    assert scraped.value(latency, f"{latency}_count", route="/v1/cases/{case_id}") == 2


class Mailbox:
    """A real SMTP server's inbox (aiosmtpd, on loopback)."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.received += 1
        return "250 OK"


def queue_email(db: Database, key: str, created_at: datetime) -> None:
    with db.transaction() as session:
        if session.get(Case, "refund-mail") is None:
            session.add(
                Case(id="refund-mail", type="refund", status="completed", step="Closed",
                     order_id="ORD-1001", customer_id="C-100", amount=None, requested_by="a",
                     request={}, rules={}, opened_at=created_at, updated_at=created_at)
            )  # fmt: skip
            session.flush()
        session.add(
            OutboxEmail(dedup_key=key, case_id="refund-mail", template="refund_confirmed",
                        to_address="ada@example.com", subject="Your refund", body="On its way.",
                        created_at=created_at)
        )  # fmt: skip


async def test_the_dispatcher_counts_emails_sent_attempts_failed_and_emails_given_up(
    db: Database,
) -> None:
    metrics_port, smtp_port = free_port(), free_port()
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    runtime = prometheus_runtime("127.0.0.1", metrics_port)  # held: it serves while it lives
    meter = runtime.metric_meter
    now = NOW

    def dispatcher() -> OutboxDispatcher:
        return OutboxDispatcher(
            db,
            SmtpTransport(SmtpSettings(host="127.0.0.1", port=smtp_port)),
            sender="support@exoticmeats.com",
            retry=MailRetry(first_interval=timedelta(seconds=30), give_up_after=timedelta(days=2)),
            clock=lambda: now,
            meter=meter,
        )

    # The SMTP server is down: two attempts fail, both emails wait for another.
    queue_email(db, "mail/1", NOW)
    queue_email(db, "mail/2", NOW)
    assert dispatcher().deliver_pending() == 0
    # It is back a minute later: both are sent.
    mailbox = Mailbox()
    server = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    server.start()
    try:
        now = NOW + timedelta(minutes=1)
        assert dispatcher().deliver_pending() == 2
    finally:
        server.stop()
    assert mailbox.received == 2
    # Down again, and an email queued three days ago is given up on.
    queue_email(db, "mail/3", NOW - timedelta(days=3))
    assert dispatcher().deliver_pending() == 0

    scraped = await scraped_until(
        url, lambda s: s.value("casework_emails_failed", template="refund_confirmed") == 1
    )
    assert scraped.value("casework_emails_sent", template="refund_confirmed") == 2
    assert scraped.value("casework_email_attempts_failed", error_type="ConnectionRefusedError") == 3


def add_approval(db: Database, case_id: str, status: str, requested_at: datetime) -> None:
    """A case (its procedure is its id's prefix) and its approval request."""
    with db.transaction() as session:
        session.add(
            Case(
                id=case_id,
                type=case_id.split("-")[0],
                status="awaiting_approval",
                step="Awaiting manager approval",
                order_id="ORD-1001",
                customer_id="C-100",
                amount=Decimal("750.00"),
                requested_by="agent-amy",
                request={},
                rules={},
                opened_at=requested_at,
                updated_at=requested_at,
            )
        )
        session.flush()  # the case before its approval (the foreign key)
        session.add(
            Approval(
                case_id=case_id,
                status=status,
                amount=Decimal("750.00"),
                reason="over the threshold",
                requested_by="agent-amy",
                requested_at=requested_at,
                remind_at=requested_at,
                escalate_at=requested_at,
                due_at=requested_at,
                eligible_approvers=["sup-sam"],
            )
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_pending_approvals_are_counted_per_procedure_with_the_oldest_age(db: Database) -> None:
    add_approval(db, "refund-a", "pending", NOW - timedelta(hours=5))
    add_approval(db, "refund-b", "pending", NOW - timedelta(hours=1))
    add_approval(db, "refund-c", "approved", NOW - timedelta(days=9))
    add_approval(db, "return-a", "pending", NOW - timedelta(minutes=3))
    add_approval(db, "complaint-a", "expired", NOW - timedelta(days=4))
    gauge = PendingApprovalsGauge(db, MetricMeter.noop, clock=lambda: NOW)

    pending = gauge.refresh()

    assert pending["refund"] == Pending(count=2, oldest_seconds=5 * 3600.0)
    assert pending["return"] == Pending(count=1, oldest_seconds=180.0)
    # Procedures with nothing pending are reported as 0, not left out.
    assert pending["complaint"] == Pending(count=0, oldest_seconds=0.0)
    assert pending["freight_claim"] == Pending(count=0, oldest_seconds=0.0)


def test_a_taken_worker_metrics_port_stops_the_worker_with_a_sentence_naming_it() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(SystemExit, match=f"127.0.0.1:{port}.*WORKER_METRICS_PORT"):
            metrics_runtime(Settings(worker_metrics_port=port))
    assert metrics_runtime(Settings(worker_metrics_port=0)) is None
