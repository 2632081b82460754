"""Helpers the complaint specifications share (tests/test_complaints*.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from infra.db import AuditRecord, OutboxEmail
from starter import case_state
from tests.conftest import Shop
from workflows.complaint_models import ComplaintRequest, ComplaintState
from workflows.models import CaseStatus

T = TypeVar("T")
EASTERN = ZoneInfo("America/New_York")
MONDAY, TUESDAY, FRIDAY, SATURDAY = 0, 1, 4, 5


def complaint(
    category: str = "quality",
    resolution: str = "none",
    amount: str | None = None,
    order_id: str = "ORD-1001",
    **fields: Any,
) -> ComplaintRequest:
    body: dict[str, Any] = {
        "request_id": f"req-{uuid.uuid4().hex[:10]}",
        "order_id": order_id,
        "customer_id": "C-100",
        "category": category,
        "description": "the bison ribeye smelled off on opening",
        "sku": "BISON-RIBEYE",
        "lot": f"LOT-{uuid.uuid4().hex[:6]}",
        "photos": ["https://photos.example.com/1.jpg"],
        "requested_resolution": resolution,
        "requested_by": "agent-amy",
        **fields,
    }
    if amount is not None:
        body["amount"] = Decimal(amount)
    return ComplaintRequest.model_validate(body)


async def move_to(env: WorkflowEnvironment, weekday: int, hour: int, minute: int = 0) -> datetime:
    """Skip the test server's clock to the next ``weekday`` at ``hour``:``minute`` Eastern."""
    now = (await env.get_current_time()).astimezone(EASTERN)
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    target += timedelta(days=(weekday - now.weekday()) % 7)
    if target <= now:
        target += timedelta(days=7)
    await env.sleep(target - now)
    return target


async def state_when(
    client: Client, case_id: str, ready: Callable[[ComplaintState], bool]
) -> ComplaintState:
    state = None
    for _ in range(300):
        state = await case_state(client, case_id, ComplaintState)
        if ready(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{case_id} never got there; last: {state}")


async def status_of(client: Client, case_id: str, status: CaseStatus) -> ComplaintState:
    return await state_when(client, case_id, lambda s: s.status is status)


async def timers_started(handle: WorkflowHandle[Any, Any], count: int = 1) -> None:
    """Wait until the case has started ``count`` timers: it now waits on the last one."""
    for _ in range(300):
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


def audit(shop: Shop, case_id: str) -> list[AuditRecord]:
    with shop.db.transaction() as session:
        return list(
            session.scalars(
                select(AuditRecord).where(AuditRecord.case_id == case_id).order_by(AuditRecord.seq)
            )
        )


def events(shop: Shop, case_id: str) -> list[str]:
    return [line.event for line in audit(shop, case_id)]


def emails(shop: Shop, case_id: str, template: str | None = None) -> list[OutboxEmail]:
    with shop.db.transaction() as session:
        query = select(OutboxEmail).where(OutboxEmail.case_id == case_id)
        if template:
            query = query.where(OutboxEmail.template == template)
        return list(session.scalars(query.order_by(OutboxEmail.id)))


async def eventually(probe: Callable[[], list[T]]) -> list[T]:
    for _ in range(200):
        if rows := probe():
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError("nothing appeared")
