"""One worker process of the benchmark: the production worker, or a bare one.

``python -m bench.worker_process refund|rush|baseline|minimal ADDRESS TASK_QUEUE DATABASE_URL``
prints ``ready`` once it polls, and stops gracefully on SIGTERM. Each run gets a process of
its own, so that its peak memory is its own.
"""

from __future__ import annotations

import asyncio
import compileall
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from bench.baseline import BaselineWorkflow, MinimalWorkflow, noop
from bench.unprioritized import UnprioritizedRushWorkflow
from infra import heap
from infra.logs import configure_logging
from infra.temporal import DATA_CONVERTER
from settings import Settings
from worker import build_worker


def bare_worker(client: Client, task_queue: str) -> Worker:
    """The same worker options as ``worker.build_worker``, around the bare workflows."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BaselineWorkflow, MinimalWorkflow],
        activities=[noop],
        activity_executor=ThreadPoolExecutor(max_workers=16, thread_name_prefix="activity"),
        max_concurrent_activities=16,
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


# The sandbox re-imports each workflow module for every workflow run. A deployed worker reads
# them as compiled bytecode (images ship it; Python writes it at first import), but this
# machine sets PYTHONDONTWRITEBYTECODE, which would make every run recompile the source: a
# cost production does not pay, and one that grows with the number of workflow modules.
PROJECT = Path(__file__).resolve().parent.parent


def compile_workflow_code() -> None:
    for package in ("workflows", "bench"):
        compileall.compile_dir(PROJECT / package, quiet=1)


async def main(kind: str, address: str, task_queue: str, database_url: str) -> None:
    compile_workflow_code()
    settings = Settings(database_url=database_url, task_queue=task_queue)
    configure_logging(settings.log_format, settings.log_level)
    client = await Client.connect(address, data_converter=DATA_CONVERTER)
    if kind == "refund":
        worker = build_worker(client, database_url=database_url, settings=settings)
    elif kind == "rush":
        # A busy worker: one task of each kind at a time, so a backlog forms and Temporal
        # serves it by priority; the rush without priority is registered beside the product.
        worker = build_worker(
            client,
            database_url=database_url,
            settings=settings,
            max_concurrent_activities=1,
            max_concurrent_workflow_tasks=1,
            extra_workflows=[UnprioritizedRushWorkflow],
        )
    elif kind in ("baseline", "minimal"):
        worker = bare_worker(client, task_queue)
    else:
        raise SystemExit(f"unknown worker kind {kind!r}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    heap.settle()  # as the product's worker does, for every kind: the same process settings
    async with worker:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
