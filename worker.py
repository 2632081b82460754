"""The worker: every registered procedure and every activity on one task queue.

``python worker.py`` runs it until SIGINT/SIGTERM, then finishes in-flight activities and
stops. ``build_worker`` returns it un-started, for tests and embedding.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from activities.cancellation import LinkedCases
from activities.cases import CaseActivities
from activities.lots import LotActivities
from activities.mail import MailRetry, OutboxDispatcher, SmtpTransport
from activities.pending_approvals import PendingApprovalsGauge
from infra import heap
from infra.codec import CodecKeyError
from infra.db import Database
from infra.logs import configure_logging
from infra.temporal import metric_meter, prometheus_runtime
from registry import SUPPORTING_WORKFLOWS, WORKFLOWS
from settings import Settings, get_settings
from workflows import metrics
from workflows.sandbox import workflow_runner

__all__ = ["WORKFLOWS", "build_activities", "build_worker", "metrics_runtime", "run_worker"]

log = structlog.get_logger(__name__)


def _load(spec: str, db: Database) -> Any:
    """Build a pluggable system from "module:factory", the factory taking the database."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)(db)


def build_activities(db: Database, settings: Settings | None = None) -> CaseActivities:
    settings = settings or get_settings()
    return CaseActivities(
        db,
        orders=_load(settings.order_system, db),
        payments=_load(settings.payment_gateway, db),
        carrier=_load(settings.carrier, db),
        settings=settings,
    )


def build_worker(
    client: Client,
    *,
    database_url: str | None = None,
    activities: CaseActivities | None = None,
    task_queue: str | None = None,
    settings: Settings | None = None,
    max_concurrent_activities: int = 16,
    max_concurrent_workflow_tasks: int | None = None,
    extra_workflows: Sequence[type] = (),
) -> Worker:
    """The un-started worker; pass ``activities`` to wire other (real, local) parts.

    The concurrency limits narrow a worker to few tasks at a time (a busy worker, whose
    backlog Temporal orders by task priority); ``extra_workflows`` registers more workflow
    types beside the product's (the bench's variants). Production uses the defaults."""
    settings = settings or get_settings()
    if activities is None:
        activities = build_activities(Database(database_url or settings.database_url), settings)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[*WORKFLOWS, *SUPPORTING_WORKFLOWS, *extra_workflows],
        # Pass-through modules listed once; the shared workflow logic is checked by the sandbox.
        workflow_runner=workflow_runner(),
        activities=[*activities.all(), *LotActivities(client).all(), *LinkedCases(client).all()],
        # Activities are synchronous database work: run them on threads, not the event loop.
        activity_executor=ThreadPoolExecutor(
            max_workers=max_concurrent_activities, thread_name_prefix="activity"
        ),
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


def metrics_runtime(settings: Settings) -> Runtime | None:
    """The runtime serving the worker's metrics on WORKER_METRICS_PORT (None: 0, none)."""
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    if not port:
        return None
    try:
        return prometheus_runtime(host, port, histogram_buckets=metrics.HISTOGRAM_BUCKETS)
    except ValueError as err:  # the port is taken, or the host is not ours
        raise SystemExit(
            f"cannot serve the worker's metrics on {host}:{port} ({err}); stop what holds it, "
            "or set WORKER_METRICS_PORT to a free port (0: no metrics endpoint)"
        ) from None


async def run_worker(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    """Run until ``stop``; with EMAIL_TRANSPORT=smtp, deliver the outbox alongside. The
    pending approvals gauges and the dispatcher's counters go to ``client``'s runtime."""
    db = Database(settings.database_url)
    worker = build_worker(client, activities=build_activities(db, settings), settings=settings)
    meter = metric_meter(client)
    async with worker:
        log.info("worker_started", task_queue=settings.task_queue, namespace=client.namespace)
        beside: list[asyncio.Task[None]] = []
        if meter is not MetricMeter.noop:  # a runtime exporting metrics: keep its gauges fresh
            gauge = PendingApprovalsGauge(db, meter)
            beside.append(asyncio.create_task(gauge.run(stop, settings.approvals_gauge_every)))
        if settings.email_transport == "smtp":
            # Every worker runs one; claims keep them from sending the same email twice.
            dispatcher = OutboxDispatcher(
                db,
                SmtpTransport(settings.smtp),
                sender=settings.support_email,
                retry=MailRetry.from_settings(settings),
                meter=meter,
            )
            beside.append(asyncio.create_task(dispatcher.run(stop)))
        await stop.wait()
        await asyncio.gather(*beside)
    db.dispose()
    log.info("worker_stopped")


async def main() -> None:
    from infra.temporal import connect

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runtime = metrics_runtime(settings)
    if runtime is not None:
        log.info(
            "worker_metrics",
            url=f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics",
        )
    try:
        client = await connect(runtime=runtime)
    except CodecKeyError as err:  # no payload key: say so in one line, start nothing
        raise SystemExit(f"error: {err}") from None
    heap.settle()  # everything the worker keeps is imported by now
    await run_worker(client, settings, stop)


if __name__ == "__main__":
    asyncio.run(main())
