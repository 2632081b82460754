"""Helpers the approval specifications share (tests/test_approval_gate.py, test_authority.py,
test_replay.py): a case waiting for a manager, and the decision code its emails carry."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from temporalio.client import Client, WorkflowHandle

from infra.db import OutboxEmail
from starter import case_state
from tests.case_helpers import until
from tests.conftest import Shop
from workflows.models import ApprovalState, CaseState, CaseStatus

DECISION_CODE = re.compile(r"decision code: ([A-Z0-9-]+)")


async def awaiting_approval(client: Client, handle: WorkflowHandle[Any, Any]) -> ApprovalState:
    """The approval the case waits on, once it waits."""

    async def probe() -> CaseState | None:
        state = await case_state(client, handle.id)
        return state if state.status is CaseStatus.AWAITING_APPROVAL else None

    state: CaseState = await until(probe, f"{handle.id} awaiting approval")
    assert state.approval is not None
    return state.approval


def decision_code(shop: Shop, staff_id: str, template: str = "approval_requested") -> str | None:
    """The decision code in the latest ``template`` email to ``staff_id``, if any."""
    with shop.db.transaction() as session:
        bodies = session.scalars(
            select(OutboxEmail.body)
            .where(
                OutboxEmail.template == template,
                OutboxEmail.to_address == f"{staff_id}@exoticmeats.com",
            )
            .order_by(OutboxEmail.id)
        ).all()
    found = DECISION_CODE.search(bodies[-1]) if bodies else None
    return found.group(1) if found else None


async def code_for(shop: Shop, staff_id: str, template: str = "approval_requested") -> str:
    """Wait for ``staff_id``'s ``template`` email; the decision code it carries."""
    code: str = await until(
        lambda: decision_code(shop, staff_id, template), f"the {template} email to {staff_id}"
    )
    return code
