"""A VIP's rush order overtakes a backlog of standard cases on a busy worker.

docs/rush-orders.md, "Priority: rush and VIP work first": a rush order starts at task
priority 2 (``registry.RUSH.priority``, passed by ``starter._start``) and, once the customer
is found to be a VIP, runs its activities at 1 (``CaseJournal.activity_priority``). Only the
real dev server orders a backlog by priority (the time-skipping test server does not), so
this runs there: with no worker polling, a backlog of standard refunds under 500.00 (they
run to completion without people) is started, then the VIP rush; then a worker that runs
one workflow task and one activity at a time drains the queue.

What is measured: how much of the backlog ran before the rush sent its quote (the
``rush_quote`` email queued, the case ``awaiting_customer``): the refunds' activities
completed before that instant (from their histories' event times, one activity at a time),
and the refunds completed by then; what is still running then is terminated. Nothing depends
on how fast the machine is; every wait is bounded in minutes.

The control is the same rush without priority (``bench.unprioritized``: ``Priority.default``
at start and for its activities, the bench's "before"): it waits its turn behind the
backlog, which shows that the measure tells priority apart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from bench.rush import start_backlog, start_rush, terminate_running
from bench.unprioritized import UnprioritizedRushWorkflow
from infra.db import OutboxEmail
from settings import Settings
from tests.conftest import Shop
from tests.rush_helpers import rush, stocked_order
from worker import build_activities, build_worker

BACKLOG = 30  # refunds under 500.00: 4 activities each, 120 in all
# The line between "served ahead of the backlog" and "waited its turn in it", in the
# backlog's activities completed before the quote: with priority 0-7 were seen, without
# 20-101 (the unprioritized turn depends on how the worker's two pollers interleave).
SEPARATES = BACKLOG // 2
WAIT = 300.0  # seconds: the busy worker drains the whole backlog in about 45 on 2 cores


@dataclass
class Race:
    """Where the rush's quote fell in the backlog's run."""

    activities_before: int  # the backlog's activities completed before the quote was queued
    refunds_before: int  # refunds completed before the quote was queued


async def race(client: Client, shop: Shop, settings: Settings, *, prioritized: bool) -> Race:
    """The backlog, then the VIP rush, with no worker; then the busy worker works until the
    rush has queued its quote, and what is left running is terminated."""
    orders = [f"ORD-P{i:03d}" for i in range(BACKLOG)]
    for order in orders:
        shop.add_order(order, "400.00")
    rush_order = stocked_order(shop, customer_id="C-200")
    queue = settings.task_queue
    refunds = await start_backlog(client, queue, f"backlog-{queue}", orders, "C-100")
    handles = list(refunds)
    try:
        vip = await start_rush(
            client, rush(rush_order, "C-200"), task_queue=queue, prioritized=prioritized
        )
        handles.append(vip)
        worker = build_worker(
            client,
            activities=build_activities(shop.db, settings),
            settings=settings,
            max_concurrent_activities=1,
            max_concurrent_workflow_tasks=1,
            extra_workflows=[UnprioritizedRushWorkflow],
        )
        async with worker:
            quoted_at = await asyncio.wait_for(quote_queued(shop, vip.id), timeout=WAIT)
            await terminate_running(handles)
    finally:
        await terminate_running(handles)
    done = [await activities_completed(handle) for handle in refunds]
    closed = [await completed_at(handle) for handle in refunds]
    return Race(
        activities_before=sum(1 for times in done for at in times if at < quoted_at),
        refunds_before=sum(1 for at in closed if at is not None and at < quoted_at),
    )


async def quote_queued(shop: Shop, case_id: str) -> datetime:
    """When the rush's quote email was queued (the case then awaits the customer)."""
    while True:
        with shop.db.transaction() as session:
            query = select(OutboxEmail.created_at).where(
                OutboxEmail.case_id == case_id, OutboxEmail.template == "rush_quote"
            )
            queued = session.scalar(query)
        if queued is not None:
            return queued
        await asyncio.sleep(0.2)


async def activities_completed(handle: WorkflowHandle[Any, Any]) -> list[datetime]:
    """When each activity of the case completed, in its history (the server's clock)."""
    return [
        event.event_time.ToDatetime(tzinfo=UTC)
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]


async def completed_at(handle: WorkflowHandle[Any, Any]) -> datetime | None:
    """When the case completed; None when it was still running (and then terminated)."""
    description = await handle.describe()
    if description.status is WorkflowExecutionStatus.COMPLETED:
        return description.close_time
    return None


async def test_a_vip_rush_overtakes_a_backlog_of_standard_cases_on_a_busy_worker(
    dev_env: WorkflowEnvironment, shop: Shop, settings: Settings
) -> None:
    """Fails when the rush loses its priority: ``priority=procedure.priority`` removed from
    ``starter._start``, or ``RUSH`` back at the default priority (it then starts behind the
    backlog and its workflow tasks and first activities wait behind every refund's)."""
    measured = await race(dev_env.client, shop, settings, prioritized=True)

    print(f"with priority: {measured}")
    # Served ahead of the backlog: 0-7 of its 120 activities ran first, and 0 refunds
    # completed, in 4 runs (without priority: 20-101, 1-12 refunds, in 7 runs).
    assert measured.activities_before < SEPARATES
    assert measured.refunds_before < BACKLOG // 2


async def test_the_same_rush_without_priority_waits_behind_the_backlog(
    dev_env: WorkflowEnvironment, shop: Shop, settings: Settings
) -> None:
    """The control: the measure above tells a rush with priority from one without."""
    measured = await race(dev_env.client, shop, settings, prioritized=False)

    print(f"without priority: {measured}")
    # Its turn comes in the backlog: 20-101 of its 120 activities ran first in 7 runs (with
    # priority: 0-7). The refunds advance in step, so few have completed by then.
    assert measured.activities_before > SEPARATES
