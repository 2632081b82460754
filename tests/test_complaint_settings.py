"""The complaint settings: recorded with each case as ``CaseRules.complaint``, checked at start."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import Client

from settings import Settings
from starter import start_case
from tests.complaint_helpers import complaint, status_of
from tests.conftest import Cases, Shop
from workflows.models import CaseStatus


def test_the_complaint_rules_default_to_the_procedures_own() -> None:
    rules = Settings().case_rules().complaint

    assert rules.settlement_above == Decimal("1000.00")
    assert rules.follow_up_within == timedelta(hours=24)
    assert rules.satisfaction_wait_days == 3
    assert (rules.lot_alert_complaints, rules.lot_alert_window) == (3, timedelta(days=7))


@pytest.mark.parametrize(
    "bad",
    [
        {"satisfaction_wait": 0},
        {"follow_up_within": timedelta(0)},
        {"lot_alert_complaints": 0},
        {"lot_alert_window": timedelta(0)},
        {"complaint_settlement_above": Decimal("10.001")},
    ],
    ids=lambda bad: next(iter(bad)),
)
def test_a_setting_that_makes_no_sense_is_refused_at_start(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)


@pytest.mark.parametrize(
    "settings", [{"complaint_settlement_above": Decimal("500.00")}], indirect=True
)
async def test_a_lower_settlement_threshold_sends_600_to_a_manager(
    client: Client, cases: Cases, shop: Shop, settings: Settings
) -> None:
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    shop.add_order(order_id, "900.00")
    request = complaint("quality", "refund", "600.00", order_id=order_id)
    handle = await cases.start(start_case, request)

    state = await status_of(client, handle.id, CaseStatus.AWAITING_APPROVAL)
    assert state.approval is not None and state.approval.amount == Decimal("600.00")
