"""Helpers the specifications that call the activities directly share (no workflow runs:
the test plays the workflow's part, attempt by attempt)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from activities.cases import CaseActivities
from workflows.models import CaseOpening, CaseType


def refund_opening(case_id: str) -> CaseOpening:
    """A refund case of 120.00 on ORD-1001, as its workflow's first step opens it."""
    return CaseOpening(
        case_id=case_id,
        case_type=CaseType.REFUND,
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal("120.00"),
        requested_by="agent-amy",
        request={},
        opened_at=datetime.now(UTC),
    )


def open_case(activities: CaseActivities, case_id: str) -> None:
    """Open that refund case, so the activities have a case to work on."""
    activities.open_case(refund_opening(case_id))
