"""Models that travel through Temporal history must read what another version wrote.

An open case replays its history with the code of the day: a field added by a newer worker
(rolling deploy) or dropped since (cleanup) must not stop the case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from workflows.models import AuditEntry, CaseState, Decision, RefundRequest


def test_a_workflow_input_with_a_field_this_version_does_not_know_still_loads() -> None:
    request = RefundRequest.model_validate(
        {
            "request_id": "r-1",
            "order_id": "ORD-1",
            "customer_id": "C-1",
            "amount": "10.00",
            "reason": "thawed",
            "requested_by": "agent-amy",
            "priority": "high",  # written by a newer worker
        }
    )
    assert request.amount == Decimal("10.00")


def test_messages_and_results_with_unknown_fields_still_load() -> None:
    decision = Decision.model_validate(
        {"approver_id": "mgr-mia", "decision": "approve", "signed_with": "x"}
    )
    entry = AuditEntry.model_validate(
        {
            "case_id": "refund-r-1",
            "seq": 1,
            "at": datetime(2026, 11, 26, tzinfo=UTC),
            "event": "case_opened",
            "actor": "agent-amy",
            "retired_field": True,
        }
    )
    assert (decision.approver_id, entry.seq) == ("mgr-mia", 1)
    assert "retired_field" not in entry.model_dump()
    assert CaseState.model_config.get("extra") == "ignore"
