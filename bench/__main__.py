"""``python -m bench``: the refund procedure's throughput, latency and memory.

Starts the Temporal dev server (in memory) and, one after the other, two worker processes
on it: the baseline (a bare workflow of the same shape, ``bench.baseline``) and the
production worker over a fresh SQLite database. Each gets the same load: N cases, at most C
in flight, every other one waiting for a manager who approves through the update as soon as
the case asks. Prints a table and exits 1 when a target of docs/benchmark.md is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

import migrations
from activities.staff import StaffDirectory
from bench.baseline import BaselineWorkflow
from infra.db import Customer, Database, Order
from starter import DATA_CONVERTER, DecisionRefused, decide, start_refund
from workflows import visibility
from workflows.models import CaseStatus, Decision, DecisionKind, Outcome, RefundRequest

BIN = Path(sys.executable).parent

# The targets of docs/benchmark.md.
MIN_THROUGHPUT_RATIO = 0.40  # refund cases/s over baseline cases/s
MAX_P95_RATIO = 2.5  # refund p95 start-to-complete over baseline p95 (same load)
MAX_PEAK_RSS_MB = 300.0  # the production worker process


@dataclass
class Run:
    kind: str
    cases: int
    seconds: float
    latencies: list[float]
    peak_rss_mb: float

    @property
    def throughput(self) -> float:
        return self.cases / self.seconds

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]


# ---- one case of each kind -------------------------------------------------------------------


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


async def refund_case(client: Client, task_queue: str, tag: str, i: int) -> None:
    needs_manager = i % 2 == 1
    request = RefundRequest(
        request_id=f"{tag}-{i}",
        order_id=f"ORD-B-{i:05d}",
        customer_id="C-BENCH",
        amount=Decimal("750.00" if needs_manager else "400.00"),
        reason="bench",
        requested_by="agent-bench",
    )
    started = await start_refund(client, request, task_queue=task_queue)
    if needs_manager:
        await until_awaiting_approval(started.handle)
        decision = Decision(
            approver_id="mgr-bench", decision=DecisionKind.APPROVE, event_id=f"{tag}-{i}"
        )
        try:
            await decide(client, started.case_id, decision)
        except DecisionRefused as refused:
            raise RuntimeError(f"{started.case_id}: {refused.message}") from refused
    outcome: Outcome = await started.handle.result()
    if outcome.status is not CaseStatus.COMPLETED:
        raise RuntimeError(f"{started.case_id} ended {outcome.status}: {outcome.reason}")


async def baseline_case(client: Client, task_queue: str, tag: str, i: int) -> None:
    needs_manager = i % 2 == 1
    handle = await client.start_workflow(
        BaselineWorkflow.run, needs_manager, id=f"{tag}-{i}", task_queue=task_queue
    )
    if needs_manager:
        await until_awaiting_approval(handle)
        await handle.execute_update("decide", "mgr-bench")
    await handle.result()


# ---- a run -----------------------------------------------------------------------------------


def seed(database_url: str, cases: int) -> None:
    migrations.upgrade(database_url)
    db = Database(database_url)
    with db.transaction() as session:
        session.add(Customer(id="C-BENCH", name="Bench", email="bench@example.com", vip=False))
        session.flush()
        now = datetime.now(UTC)
        for i in range(cases):
            session.add(
                Order(
                    id=f"ORD-B-{i:05d}",
                    customer_id="C-BENCH",
                    status="delivered",
                    total=Decimal("1000.00"),
                    placed_at=now,
                    delivered_at=now,
                )
            )
    staff = StaffDirectory(db)
    staff.add(staff_id="agent-bench", name="Agent", email="agent@example.com", role="agent")
    staff.add(
        staff_id="mgr-bench",
        name="Manager",
        email="manager@example.com",
        role="manager",
        approval_limit=Decimal("5000.00"),
    )
    db.dispose()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


CaseRunner = Callable[[Client, str, str, int], Awaitable[None]]


async def run(
    kind: str,
    case: CaseRunner,
    client: Client,
    address: str,
    database_url: str,
    workdir: Path,
    *,
    cases: int,
    in_flight: int,
) -> Run:
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
        latencies: list[float] = []

        async def one(i: int) -> None:
            async with slots:
                started = time.perf_counter()
                await case(client, task_queue, tag, i)
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(cases))), timeout=300)
        seconds = time.perf_counter() - began
        return Run(kind, cases, seconds, latencies, peak_rss_mb(worker.pid))
    except BaseException:
        log.flush()
        show_tail(Path(str(log.name)), f"the {kind} worker's last log lines")
        raise
    finally:
        if worker.returncode is None:
            worker.terminate()
            await asyncio.wait_for(worker.wait(), timeout=30)
        log.close()


def show_tail(path: Path, title: str, lines: int = 30) -> None:
    tail = path.read_text(errors="replace").splitlines()[-lines:]
    print(f"--- {title} ---", *tail, sep="\n", file=sys.stderr)


def report(baseline: Run, refund: Run) -> list[str]:
    """Print the table; return the targets missed."""
    columns = ("cases", "seconds", "cases/s", "p50 s", "p95 s", "RSS MB")
    print(f"{'':10} " + " ".join(f"{c:>8}" for c in columns))
    for r in (baseline, refund):
        print(
            f"{r.kind:10} {r.cases:8d} {r.seconds:8.1f} {r.throughput:8.1f} "
            f"{r.percentile(50):8.2f} {r.percentile(95):8.2f} {r.peak_rss_mb:8.0f}"
        )
    ratio = refund.throughput / baseline.throughput
    p95_ratio = refund.percentile(95) / baseline.percentile(95)
    checks = [
        (
            f"throughput ratio {ratio:.2f} >= {MIN_THROUGHPUT_RATIO:.2f}",
            ratio >= MIN_THROUGHPUT_RATIO,
        ),
        (
            f"p95 latency ratio {p95_ratio:.2f} <= {MAX_P95_RATIO:.2f}",
            p95_ratio <= MAX_P95_RATIO,
        ),
        (
            f"worker peak RSS {refund.peak_rss_mb:.0f} MB <= {MAX_PEAK_RSS_MB:.0f} MB",
            refund.peak_rss_mb <= MAX_PEAK_RSS_MB,
        ),
    ]
    print()
    for text, ok in checks:
        print(f"{'ok    ' if ok else 'MISSED'} {text}")
    return [text for text, ok in checks if not ok]


async def main(cases: int, in_flight: int, json_path: Path | None) -> int:
    with tempfile.TemporaryDirectory(prefix="casework-bench-") as tmp:
        workdir = Path(tmp)
        database_url = f"sqlite:///{workdir / 'cases.db'}"
        seed(database_url, cases)
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(BIN / "temporal"),
            data_converter=DATA_CONVERTER,
            search_attributes=list(visibility.ALL_KEYS),
            ui=False,
        ) as env:
            address = env.client.service_client.config.target_host
            print(f"{cases} cases, {in_flight} in flight, half approved by update; {address}\n")
            common = {"cases": cases, "in_flight": in_flight}
            baseline = await run(
                "baseline", baseline_case, env.client, address, database_url, workdir, **common
            )
            refund = await run(
                "refund", refund_case, env.client, address, database_url, workdir, **common
            )
        missed = report(baseline, refund)
    if json_path:
        write_json(json_path, baseline, refund)
    return 1 if missed else 0


def write_json(path: Path, *runs: Run) -> None:
    measured = {
        r.kind: {
            **asdict(r),
            "throughput": r.throughput,
            "p50": r.percentile(50),
            "p95": r.percentile(95),
        }
        for r in runs
    }
    path.write_text(json.dumps(measured, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--cases", type=int, default=200, help="cases per run (default 200)")
    parser.add_argument("--in-flight", type=int, default=100, help="concurrent cases (100)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.cases, args.in_flight, args.json)))
