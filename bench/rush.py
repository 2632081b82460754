"""VIP rush latency under a backlog: task priority, as built, against none.

A worker limited to one workflow task and one activity at a time (``bench.worker_process
rush``) is given N standard refunds under 500.00 (they run to completion without people),
then one rush order of a VIP customer. Twice, on fresh task queues of the same worker
process: the rush started as the product starts it (``starter.start_case``: priority 2, its
activities at 1 once the customer is found to be a VIP), and the same rush without priority
(``bench.unprioritized``: ``Priority.default`` at start and for every activity). Measured:
the rush's latency from its start to ``awaiting_customer`` (its quote sent), read with
``describe`` (which does not reach the worker), and how many of the refunds had completed by
then; the ratio of the two latencies is the gain.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import Priority, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from bench.unprioritized import UnprioritizedRushWorkflow
from infra.db import Customer, Database, Order, OrderLine, Stock
from starter import case_id_for, start_case, start_refund
from workflows import visibility
from workflows.models import CaseType, RefundRequest
from workflows.rush_models import RushOrderRequest

VIP = "C-BENCH-VIP"
LINES = (("BENCH-RIBEYE", 2, "60.00"), ("BENCH-SAUSAGE", 4, "20.00"))


@dataclass
class Round:
    """One rush behind a backlog: its latency to ``awaiting_customer`` and its place."""

    prioritized: bool
    backlog: int
    seconds: float  # the rush's start to its quote (awaiting_customer)
    refunds_done: int  # of the backlog, completed by then


def refund_order(tag: str, i: int) -> str:
    return f"ORD-{tag}-{i:03d}"


def rush_order(tag: str) -> str:
    return f"ORD-{tag}-RUSH"


def seed(database_url: str, tag: str, backlog: int) -> None:
    """A VIP customer (once), a processing order of LINES for the rush, every sku in stock,
    and a delivered order of 1000.00 for each refund of the backlog."""
    db = Database(database_url)
    now = datetime.now(UTC)
    with db.transaction() as session:
        if session.get(Customer, VIP) is None:
            session.add(Customer(id=VIP, name="VIP", email="vip@example.com", vip=True))
        for sku, _, _ in LINES:
            session.merge(Stock(sku=sku, on_hand=1000, restock_on=None))
        session.flush()
        session.add(
            Order(
                id=rush_order(tag),
                customer_id=VIP,
                status="processing",
                total=Decimal("200.00"),
                placed_at=now,
            )
        )
        for sku, quantity, price in LINES:
            session.add(
                OrderLine(
                    order_id=rush_order(tag),
                    sku=sku,
                    description=sku,
                    quantity=quantity,
                    unit_price=Decimal(price),
                )
            )
        for i in range(backlog):
            session.add(
                Order(
                    id=refund_order(tag, i),
                    customer_id="C-BENCH",
                    status="delivered",
                    total=Decimal("1000.00"),
                    placed_at=now,
                    delivered_at=now,
                )
            )
    db.dispose()


def rush_request(order_id: str, customer_id: str) -> RushOrderRequest:
    return RushOrderRequest(
        request_id=f"bench-{uuid.uuid4().hex[:10]}",
        order_id=order_id,
        customer_id=customer_id,
        requested_by="agent-bench",
    )


async def start_rush(
    client: Client, request: RushOrderRequest, *, task_queue: str, prioritized: bool
) -> WorkflowHandle[Any, Any]:
    """The rush as the product starts it, or the same without any task priority."""
    if prioritized:
        return (await start_case(client, request, task_queue=task_queue)).handle
    return await client.start_workflow(
        UnprioritizedRushWorkflow.run,
        request,
        id=case_id_for(CaseType.RUSH, request.request_id),
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(visibility.CASE_TYPE, CaseType.RUSH.value),
                SearchAttributePair(visibility.CASE_STATUS, "received"),
                SearchAttributePair(visibility.ORDER_ID, request.order_id),
                SearchAttributePair(visibility.CUSTOMER_ID, request.customer_id),
            ]
        ),
        priority=Priority.default,
    )


async def start_backlog(
    client: Client, task_queue: str, tag: str, orders: list[str], customer_id: str
) -> list[WorkflowHandle[Any, Any]]:
    """A standard refund of 100.00 on each order, started one after the other (in order)."""
    handles = []
    for i, order in enumerate(orders):
        request = RefundRequest(
            request_id=f"{tag}-{i}",
            order_id=order,
            customer_id=customer_id,
            amount=Decimal("100.00"),
            reason="bench backlog",
            requested_by="agent-bench",
        )
        handles.append((await start_refund(client, request, task_queue=task_queue)).handle)
    return handles


async def status(handle: WorkflowHandle[Any, Any]) -> str | None:
    """The case's ``CaseStatus``, from the server alone (describe does not reach a worker)."""
    description = await handle.describe()
    return description.typed_search_attributes.get(visibility.CASE_STATUS)


async def until_status(handle: WorkflowHandle[Any, Any], wanted: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while await status(handle) != wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{handle.id} did not reach {wanted} in {seconds:.0f}s")
        await asyncio.sleep(0.05)


async def completed(handles: list[WorkflowHandle[Any, Any]]) -> int:
    done = 0
    for handle in handles:
        description = await handle.describe()
        done += description.status is WorkflowExecutionStatus.COMPLETED
    return done


async def one_round(
    client: Client, task_queue: str, database_url: str, *, backlog: int, prioritized: bool
) -> Round:
    """N refunds, then the VIP rush, on the busy worker polling ``task_queue``; what is left
    running once the rush has sent its quote is terminated (the next round starts clean)."""
    tag = f"R{uuid.uuid4().hex[:6]}"
    seed(database_url, tag, backlog)
    refunds = await start_backlog(
        client, task_queue, tag, [refund_order(tag, i) for i in range(backlog)], "C-BENCH"
    )
    request = rush_request(rush_order(tag), VIP)
    started = time.perf_counter()
    rush = await start_rush(client, request, task_queue=task_queue, prioritized=prioritized)
    try:
        await until_status(rush, "awaiting_customer", 240)
        seconds = time.perf_counter() - started
        refunds_done = await completed(refunds)
    finally:
        await terminate_running([*refunds, rush])
    return Round(prioritized, backlog, seconds, refunds_done)


async def terminate_running(handles: list[WorkflowHandle[Any, Any]]) -> None:
    for handle in handles:
        if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
            try:
                await handle.terminate(reason="bench round finished")
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND:  # else it closed meanwhile
                    raise


async def measure(client: Client, address: str, database_url: str, backlog: int) -> list[Round]:
    """Both rounds on one busy worker process (``bench.worker_process rush``)."""
    task_queue = f"bench-rush-{uuid.uuid4().hex[:6]}"
    worker = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.worker_process", "rush", address, task_queue),
        database_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert worker.stdout is not None
        ready = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
        if ready.strip() != b"ready":
            raise RuntimeError("the rush worker did not start")
        return [
            await one_round(
                client, task_queue, database_url, backlog=backlog, prioritized=prioritized
            )
            for prioritized in (True, False)
        ]
    finally:
        if worker.returncode is None:
            worker.terminate()
            await asyncio.wait_for(worker.wait(), timeout=30)


def summarize(rounds: list[Round]) -> dict[str, Any]:
    by = {("priority" if r.prioritized else "no_priority"): r for r in rounds}
    with_, without = by["priority"], by["no_priority"]
    return {
        "backlog": with_.backlog,
        "worker": "one workflow task and one activity at a time",
        **{
            name: {
                "seconds_to_awaiting_customer": r.seconds,
                "refunds_completed_before": r.refunds_done,
            }
            for name, r in by.items()
        },
        "latency_without_vs_with": without.seconds / with_.seconds,
    }
