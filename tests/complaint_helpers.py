"""Helpers the complaint specifications share (tests/test_complaints*.py); the ones every
case specification uses come from ``tests.case_helpers``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from temporalio.client import Client

from starter import case_state
from workflows.complaint_models import ComplaintRequest, ComplaintState
from workflows.models import CaseStatus


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
