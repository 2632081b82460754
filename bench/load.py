"""The load: N cases, at most C in flight, against one worker process; and what they cost.

Every other case needs a manager: 750.00 (over the 500.00 threshold) against 400.00 for the
others. The client waits until such a case shows ``CaseStatus = awaiting_approval`` (read
with ``describe``, which does not reach the worker), approves it with the ``decide`` update
and waits for the result. After the timed part, each case's history is read to count the
activities it ran.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench import cpu
from bench.baseline import BaselineWorkflow, MinimalWorkflow
from bench.database import order_id
from starter import CaseNotAnswering, DecisionRefused, decide, start_refund
from workflows import visibility
from workflows.models import CaseStatus, Decision, DecisionKind, Outcome, RefundRequest

# What the SDK names the marker a local activity leaves in history.
LOCAL_ACTIVITY_MARKER = "core_local_activity"


@dataclass
class Case:
    """One finished case: whether it needed a manager, its latency and what it ran."""

    needs_manager: bool
    seconds: float
    workflow_id: str
    decision_resent: int  # times the decision went unanswered for 15 s and was sent again
    activities: int = 0
    events: int = 0


@dataclass
class Run:
    kind: str
    seconds: float
    peak_rss_mb: float
    done: list[Case]
    cpu_usage: cpu.Usage
    load_average_after: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))

    @property
    def decisions_resent(self) -> int:
        return sum(c.decision_resent for c in self.done)

    @property
    def completed(self) -> int:
        return len(self.done)

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds

    def percentile(self, p: int) -> float:
        latencies = [c.seconds for c in self.done]
        if len(latencies) < 2:
            return latencies[0]
        return statistics.quantiles(latencies, n=100, method="inclusive")[p - 1]


# ---- one case of each kind -------------------------------------------------------------------


def needs_manager(i: int) -> bool:
    return i % 2 == 1


async def until_awaiting_approval(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait for the case to ask for a decision, reading its status from the server only
    (describe does not reach the worker), with a gentle backoff."""
    delay = 0.05
    for _ in range(200):
        description = await handle.describe()
        status = description.typed_search_attributes.get(visibility.CASE_STATUS)
        if status == "awaiting_approval":
            return
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise RuntimeError(f"{handle.id} never asked for approval")


async def refund_case(client: Client, task_queue: str, tag: str, i: int) -> tuple[str, int]:
    """A refund through the product's own client, approved when over the threshold."""
    request = RefundRequest(
        request_id=f"{tag}-{i}",
        order_id=order_id(i),
        customer_id="C-BENCH",
        amount=Decimal("750.00" if needs_manager(i) else "400.00"),
        reason="bench",
        requested_by="agent-bench",
    )
    started = await start_refund(client, request, task_queue=task_queue)
    if needs_manager(i):
        await until_awaiting_approval(started.handle)
        decision = Decision(
            approver_id="mgr-bench", decision=DecisionKind.APPROVE, event_id=f"{tag}-{i}"
        )
        resent = await approve(client, started.case_id, decision)
    outcome: Outcome = await started.handle.result()
    if outcome.status is not CaseStatus.COMPLETED:
        raise RuntimeError(f"{started.case_id} ended {outcome.status}: {outcome.reason}")
    return started.handle.id, resent if needs_manager(i) else 0


async def approve(client: Client, case_id: str, decision: Decision) -> int:
    """Send the decision as My work does; returns how often it was sent again.

    ``starter.decide`` gives up after 15 s without an answer, which a saturated worker can
    take. The decision's event id is the update's id, so sending it again attaches to the
    same update instead of deciding twice, as a manager clicking again would.
    """
    for resent in range(10):
        try:
            await decide(client, case_id, decision)
            return resent
        except CaseNotAnswering:
            continue
        except DecisionRefused as refused:
            raise RuntimeError(f"{case_id}: {refused.message}") from refused
    raise RuntimeError(f"{case_id} did not answer its decision in 10 tries")


def bare_case(workflow_name: str) -> CaseRunner:
    async def case(client: Client, task_queue: str, tag: str, i: int) -> tuple[str, int]:
        handle = await client.start_workflow(
            workflow_name, needs_manager(i), id=f"{tag}-{i}", task_queue=task_queue
        )
        if needs_manager(i):
            await until_awaiting_approval(handle)
            await handle.execute_update("decide", "mgr-bench")
        await handle.result()
        return handle.id, 0

    return case


# A case from start to result: its workflow id and how often its decision was sent again.
CaseRunner = Callable[[Client, str, str, int], Awaitable[tuple[str, int]]]

RUNNERS: dict[str, CaseRunner] = {
    "baseline": bare_case(BaselineWorkflow.__name__),
    "minimal": bare_case(MinimalWorkflow.__name__),
    "refund": refund_case,
}


# ---- a run -----------------------------------------------------------------------------------


async def run(
    kind: str,
    client: Client,
    address: str,
    database_url: str,
    workdir: Path,
    *,
    cases: int,
    in_flight: int,
    first: int = 0,
) -> Run:
    """Start the kind's worker process, put the load through it, stop it; count activities.

    The cases are numbered from ``first``: each round of the bench refunds orders of its own."""
    case = RUNNERS[kind]
    task_queue = f"bench-{kind}"
    log = (workdir / f"{kind}-worker.log").open("wb")
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.worker_process",
        kind,
        address,
        task_queue,
        database_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    try:
        assert worker.stdout is not None
        ready = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
        if ready.strip() != b"ready":
            raise RuntimeError(f"the {kind} worker did not start")
        tag = f"{kind}-{uuid.uuid4().hex[:6]}"
        slots = asyncio.Semaphore(in_flight)
        done: list[Case] = []

        async def one(i: int) -> None:
            async with slots:
                started = time.perf_counter()
                workflow_id, resent = await case(client, task_queue, tag, i)
                seconds = time.perf_counter() - started
                done.append(Case(needs_manager(i), seconds, workflow_id, resent))

        began, cpu_before = time.perf_counter(), cpu.snapshot()
        await asyncio.wait_for(
            asyncio.gather(*(one(i) for i in range(first, first + cases))), timeout=300
        )
        seconds = time.perf_counter() - began
        used = cpu.usage(cpu_before, cpu.snapshot(), seconds, worker.pid)
        measured = Run(kind, seconds, peak_rss_mb(worker.pid), done, used, os.getloadavg())
    except BaseException:
        log.flush()
        show_tail(Path(str(log.name)), f"the {kind} worker's last log lines")
        raise
    finally:
        if worker.returncode is None:
            worker.terminate()
            await asyncio.wait_for(worker.wait(), timeout=30)
        log.close()
    await count_activities(client, measured.done)
    return measured


async def count_activities(client: Client, done: list[Case]) -> None:
    """Activities each case ran, from its history: scheduled ones and local-activity markers."""
    reads = asyncio.Semaphore(20)

    async def count(case: Case) -> None:
        async with reads:
            history = await client.get_workflow_handle(case.workflow_id).fetch_history()
        case.events = len(history.events)
        case.activities = sum(
            1
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            or (
                e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
                and e.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
            )
        )

    await asyncio.gather(*(count(c) for c in done))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def show_tail(path: Path, title: str, lines: int = 30) -> None:
    tail = path.read_text(errors="replace").splitlines()[-lines:]
    print(f"--- {title} ---", *tail, sep="\n", file=sys.stderr)
