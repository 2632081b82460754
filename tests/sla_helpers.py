"""Helpers of the SLA clock specifications: a case's clock rows, and waiting for a status."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from temporalio.client import Client

from infra.db import SlaClock
from starter import case_state
from tests.conftest import Shop
from workflows.models import CaseState, CaseStatus


def clock_rows(shop: Shop, case_id: str) -> list[SlaClock]:
    with shop.db.transaction() as session:
        query = select(SlaClock).where(SlaClock.case_id == case_id).order_by(SlaClock.key)
        return list(session.scalars(query))


def clock_row(shop: Shop, case_id: str, clock: str, run: int = 1) -> SlaClock:
    [row] = [r for r in clock_rows(shop, case_id) if r.key == f"{case_id}/{clock}/{run}"]
    return row


async def wait_for_status(client: Client, case_id: str, status: CaseStatus) -> CaseState:
    state = None
    for _ in range(600):
        state = await case_state(client, case_id)
        if state.status is status:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{case_id} never reached {status}; last: {state}")
