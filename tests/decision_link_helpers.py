"""Helpers of the decision-link specifications: a refund waiting for a manager, the links in
each approver's approval email, and what the database holds of their codes."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from temporalio.client import Client, WorkflowHandle

from infra.db import DecisionCode, LedgerEntry
from starter import case_state
from tests.case_helpers import emails, eventually
from tests.conftest import Cases, Shop
from tests.refund_helpers import refund
from workflows.models import ApprovalStatus, Outcome

LINK = re.compile(r"^\s+(Approve|Reject):\s+(\S+)$", re.MULTILINE)


async def awaiting_approval(
    cases: Cases, client: Client, amount: str
) -> WorkflowHandle[Any, Outcome]:
    """A refund of ``amount`` waiting for a manager. The handle is the start's own: awaiting
    its result lets the time-skipping server skip the request's timers."""
    handle = await cases.refund(refund(amount))
    for _ in range(400):
        approval = (await case_state(client, handle.id)).approval
        if approval is not None and approval.status is ApprovalStatus.PENDING:
            return handle
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never asked for approval")


def links_in(
    shop: Shop, case_id: str, staff_id: str, template: str = "approval_requested"
) -> dict[str, str]:
    """The links (paths) in the latest ``template`` email to ``staff_id``: approve, reject."""
    to = f"{staff_id}@exoticmeats.com"
    bodies = [e.body for e in emails(shop, case_id, template) if e.to_address == to]
    if not bodies:
        return {}
    return {verb.lower(): urlsplit(url).path for verb, url in LINK.findall(bodies[-1])}


async def links_of(
    shop: Shop, case_id: str, staff_id: str, template: str = "approval_requested"
) -> dict[str, str]:
    """Waits for ``staff_id``'s ``template`` email; the links it carries."""
    found = await eventually(
        lambda: [links] if (links := links_in(shop, case_id, staff_id, template)) else []
    )
    return found[0]


def codes_used(shop: Shop, case_id: str) -> dict[str, datetime | None]:
    """Each approver's code on the case: when it was spent (None: not yet)."""
    with shop.db.read() as session:
        rows = session.execute(
            select(DecisionCode.staff_id, DecisionCode.used_at).where(
                DecisionCode.case_id == case_id
            )
        )
        return {staff_id: used_at for staff_id, used_at in rows}


def paid(shop: Shop, case_id: str) -> list[Decimal]:
    """The amounts the ledger paid on the case."""
    with shop.db.read() as session:
        return list(
            session.scalars(select(LedgerEntry.amount).where(LedgerEntry.case_id == case_id))
        )
