"""Helpers every case specification shares: the business clock, the audit trail, the
outbox, the history of a case and waiting for it (tests/test_*.py import them from here)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from infra.db import AuditRecord, OutboxEmail
from starter import case_state
from tests.conftest import Shop
from workflows.models import CaseState, CaseStatus

T = TypeVar("T")
S = TypeVar("S", bound=CaseState)
EASTERN = ZoneInfo("America/New_York")
MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY = range(7)


async def move_to(env: WorkflowEnvironment, weekday: int, hour: int, minute: int = 0) -> datetime:
    """Skip the test server's clock to the next ``weekday`` at ``hour``:``minute`` Eastern."""
    now = (await env.get_current_time()).astimezone(EASTERN)
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    target += timedelta(days=(weekday - now.weekday()) % 7)
    if target <= now:
        target += timedelta(days=7)
    # In UTC: two datetimes of one zone subtract as wall clocks, an hour off across DST.
    await env.sleep(target.astimezone(UTC) - now.astimezone(UTC))
    return target


async def sleep_until(env: WorkflowEnvironment, instant: datetime) -> None:
    """Skip the test server's clock forward to ``instant`` (which must be ahead)."""
    now = await env.get_current_time()
    assert instant > now, f"{instant} is already past ({now})"
    await env.sleep(instant.astimezone(UTC) - now.astimezone(UTC))


async def timers_started(handle: WorkflowHandle[Any, Any], count: int = 1) -> None:
    """Wait until the case has started ``count`` timers: it now waits on the last one."""
    for _ in range(1200):
        started = [
            event
            async for event in handle.fetch_history_events()
            if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        ]
        if len(started) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never started {count} timer(s)")


async def activities_in_order(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The activity types the case scheduled, in history order."""
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def audit(shop: Shop, case_id: str, event: str | None = None) -> list[AuditRecord]:
    """The case's audit lines in order; only its ``event`` lines when one is named."""
    with shop.db.transaction() as session:
        query = select(AuditRecord).where(AuditRecord.case_id == case_id)
        if event:
            query = query.where(AuditRecord.event == event)
        return list(session.scalars(query.order_by(AuditRecord.seq)))


def events(shop: Shop, case_id: str) -> list[str]:
    return [line.event for line in audit(shop, case_id)]


def emails(shop: Shop, case_id: str, template: str | None = None) -> list[OutboxEmail]:
    with shop.db.transaction() as session:
        query = select(OutboxEmail).where(OutboxEmail.case_id == case_id)
        if template:
            query = query.where(OutboxEmail.template == template)
        return list(session.scalars(query.order_by(OutboxEmail.id)))


def outbox(shop: Shop, template: str | None = None) -> list[OutboxEmail]:
    """Every email queued, whichever case queued it (only ``template``'s when one is named)."""
    with shop.db.transaction() as session:
        query = select(OutboxEmail).order_by(OutboxEmail.id)
        if template:
            query = query.where(OutboxEmail.template == template)
        return list(session.scalars(query))


async def eventually(probe: Callable[[], list[T]]) -> list[T]:
    for _ in range(1200):
        if rows := probe():
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError("nothing appeared")


async def until(probe: Callable[[], Any], what: str) -> Any:
    """Poll ``probe`` (sync or async) until it returns something truthy."""
    for _ in range(200):
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def state_of(client: Client, case_id: str, model: type[S], ready: Callable[[S], bool]) -> S:
    """The case's state (as ``model``) once ``ready`` holds; fails after a while."""
    state = None
    for _ in range(1200):
        state = await case_state(client, case_id, model)
        if ready(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{case_id} never got there; last: {state}")


async def wait_for_status(client: Client, case_id: str, status: CaseStatus) -> CaseState:
    """The case's state once its status is ``status``; fails after a while."""
    return await state_of(client, case_id, CaseState, lambda state: state.status is status)
