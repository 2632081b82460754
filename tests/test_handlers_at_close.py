"""A case does not close while one of its message handlers is still running.

A signal handler may await an activity (the ``decision`` signal asks the directory and the
code store whether the decision may apply). If the case's ``run`` returned meanwhile, the
workflow would complete with the handler cut off: its audit line never written, and Temporal
only warning about "unfinished handlers". ``CaseWorkflow.finish`` waits for every handler.

``SlowToVerify`` is the real activities whose ``verify_decision`` check of a *signal* waits
for the test to let it answer, so that the case can be decided (by an update) and run to its
end while the signal's check is still out.
"""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.carrier import LocalCarrier
from activities.cases import CaseActivities
from activities.orders import LocalOrderSystem
from activities.payments import LocalPaymentGateway
from infra.db import OutboxEmail
from settings import Settings
from starter import case_state, decide
from tests.case_helpers import audit, until
from tests.conftest import Cases, Shop
from worker import build_worker
from workflows.models import (
    CaseStatus,
    Decision,
    DecisionCheck,
    DecisionKind,
    DecisionVerdict,
    Outcome,
    RefundRequest,
)


class SlowToVerify(CaseActivities):
    """The production activities; a signal's decision check answers once the test allows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checking = threading.Event()  # a signal's check has started
        self.answer = threading.Event()  # set by the test: the check may answer

    @activity.defn(name="verify_decision")
    def verify_decision(self, check: DecisionCheck) -> DecisionVerdict:
        if check.by_signal:
            self.checking.set()
            self.answer.wait(timeout=20)
        return super().verify_decision(check)


@dataclass
class Slow:
    cases: Cases
    activities: SlowToVerify


@pytest.fixture
async def slow(env: WorkflowEnvironment, shop: Shop, settings: Settings) -> AsyncIterator[Slow]:
    activities = SlowToVerify(
        shop.db,
        orders=LocalOrderSystem(shop.db),
        payments=LocalPaymentGateway(shop.db),
        carrier=LocalCarrier(shop.db),
        settings=settings,
    )
    async with build_worker(env.client, activities=activities, settings=settings):
        world = Slow(Cases(env.client, settings.task_queue), activities)
        try:
            yield world
        finally:
            activities.answer.set()
            await world.cases.close_all()


def decision_code(shop: Shop, staff_id: str) -> str | None:
    """The decision code in ``staff_id``'s approval request email, once it is queued."""
    with shop.db.transaction() as session:
        body = session.scalars(
            select(OutboxEmail.body).where(
                OutboxEmail.template == "approval_requested",
                OutboxEmail.to_address == f"{staff_id}@exoticmeats.com",
            )
        ).first()
    found = re.search(r"decision code: ([A-Z0-9-]+)", body or "")
    return found.group(1) if found else None


async def test_a_decision_signal_still_being_checked_when_the_case_ends_is_waited_for(
    slow: Slow, shop: Shop
) -> None:
    client = slow.cases.client
    handle = await slow.cases.refund(
        RefundRequest(
            request_id=f"req-{uuid.uuid4().hex[:10]}",
            order_id="ORD-1001",
            customer_id="C-100",
            amount=Decimal("750.00"),
            reason="thawed on arrival",
            requested_by="agent-amy",
        )
    )
    code = await until(lambda: decision_code(shop, "mgr-mia"), "the approval request to mgr-mia")
    signal = {"approver_id": "mgr-mia", "decision": "approve", "event_id": "evt-sig", "code": code}
    await handle.signal("decision", signal)
    assert await asyncio.to_thread(slow.activities.checking.wait, 10), "the signal was not checked"

    # Meanwhile another manager decides by update, and the case runs to its end...
    await decide(
        client,
        handle.id,
        Decision(approver_id="mgr-max", decision=DecisionKind.APPROVE, event_id="evt-upd"),
    )

    async def completed() -> bool:
        return (await case_state(client, handle.id)).status is CaseStatus.COMPLETED

    await until(completed, "the case reached its last step")
    await asyncio.sleep(0.5)  # ample time to close, were it not waiting for the handler
    # ...but does not close while the signal's handler is still out.
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    assert "decision_ignored" not in [line.event for line in audit(shop, handle.id)]

    slow.activities.answer.set()
    outcome: Outcome = await handle.result()

    assert outcome.status is CaseStatus.COMPLETED
    assert outcome.amount == Decimal("750.00")
    trail = audit(shop, handle.id)
    events = [line.event for line in trail]
    # The late handler's line is written, after the case's last step and before it closed.
    assert events.index("decision_ignored") > events.index("case_completed")
    ignored = trail[events.index("decision_ignored")]
    assert ignored.actor == "mgr-mia"
    assert ignored.detail["reason"] == "no decision is pending on this case (already approved)"
    assert [line.actor for line in trail if line.event == "approval_approved"] == ["mgr-max"]
