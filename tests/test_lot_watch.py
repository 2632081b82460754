"""The lot watch (Emergency Procedures, recalls): complaints counted per lot across cases.

LOT_ALERT_COMPLAINTS (3) complaints on one lot within LOT_ALERT_WINDOW (7 days) open one recall
review for QA and Food Safety, however many complaints race in.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.lots import lot_watch_id
from infra.db import OutboxEmail
from starter import start_case
from tests.case_helpers import timers_started
from tests.complaint_helpers import complaint
from tests.conftest import Cases, Shop
from tests.recorded_histories import ROOT, Shelf
from workflows.complaint_models import LotWatchState
from workflows.lot_watch import LotWatchWorkflow


def recall_reviews(shop: Shop) -> list[OutboxEmail]:
    with shop.db.transaction() as session:
        query = select(OutboxEmail).where(OutboxEmail.template == "recall_review")
        return list(session.scalars(query))


async def watch_state(client: Client, lot: str) -> LotWatchState:
    handle = client.get_workflow_handle_for(LotWatchWorkflow.run, lot_watch_id(lot))
    return await handle.query(LotWatchWorkflow.state)


async def watched(
    client: Client, lot: str, count: int, *, including: str | None = None
) -> LotWatchState:
    """The watch's state once ``count`` complaints (``including`` one) reached it."""
    state = None
    for _ in range(300):
        try:
            state = await watch_state(client, lot)
        except RPCError:  # not started yet
            state = None
        if state is None or len(state.complaints) < count:
            pass
        elif including is None or including in state.complaints:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"the watch of {lot} never counted {count}; last: {state}")


async def complaints_on(cases: Cases, lot: str, count: int) -> list[WorkflowHandle[Any, Any]]:
    requests = [complaint("food_safety", lot=lot) for _ in range(count)]
    return list(await asyncio.gather(*(cases.start(start_case, r) for r in requests)))


async def test_racing_complaints_on_one_lot_open_exactly_one_recall_review(
    client: Client, cases: Cases, shop: Shop
) -> None:
    lot = f"LOT-{uuid.uuid4().hex[:6]}"
    handles = await complaints_on(cases, lot, 6)

    state = await watched(client, lot, 6)
    for _ in range(100):  # the review's email is queued by an activity
        if recall_reviews(shop):
            break
        await asyncio.sleep(0.05)

    assert set(state.complaints) == {handle.id for handle in handles}
    assert state.review is not None
    assert len(state.review.case_ids) >= 3
    [review] = recall_reviews(shop)  # QA and Food Safety share a mailbox: one email
    assert review.to_address == "qa@exoticmeats.com"
    assert f"lot {lot}" in review.body
    assert all(case_id in review.body for case_id in state.review.case_ids)
    assert "Recall protocol checklist" in review.body
    # The watch is workflow code like any case: its history replays.
    history = await client.get_workflow_handle(lot_watch_id(lot)).fetch_history()
    replayed = await Shelf(ROOT / "lots", LotWatchWorkflow).replay(history)
    assert replayed.replay_failure is None


async def test_two_complaints_on_a_lot_open_no_review(
    client: Client, cases: Cases, shop: Shop
) -> None:
    lot = f"LOT-{uuid.uuid4().hex[:6]}"
    await complaints_on(cases, lot, 2)

    state = await watched(client, lot, 2)

    assert state.review is None
    assert recall_reviews(shop) == []


async def test_complaints_further_apart_than_the_window_open_no_review(
    env: WorkflowEnvironment, client: Client, cases: Cases, shop: Shop
) -> None:
    lot = f"LOT-{uuid.uuid4().hex[:6]}"
    await complaints_on(cases, lot, 2)
    await watched(client, lot, 2)
    await timers_started(client.get_workflow_handle(lot_watch_id(lot)))

    await env.sleep(timedelta(days=8))  # the watch ends after a quiet window
    [third] = await complaints_on(cases, lot, 1)
    state = await watched(client, lot, 1, including=third.id)  # a new watch's

    assert state.complaints == (third.id,)
    assert state.review is None
    assert recall_reviews(shop) == []
