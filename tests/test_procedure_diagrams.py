"""Every procedure's docs page draws what its code does: its Mermaid diagram names each status
the workflow can set (in a node: the state the case is in there) and each event the registry
declares for it (on an arrow, or as a message node). A status or an event added to the code
and not to the diagram fails here; how the statuses are read from the code is
tests/diagram_helpers.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry import PROCEDURES, REFUND, Procedure
from tests.diagram_helpers import (
    Diagram,
    diagrams_in,
    missing_from,
    reachable_statuses,
    without_word,
)
from workflows.models import CaseStatus
from workflows.refund import RefundWorkflow

DOCS = Path(__file__).resolve().parent.parent / "docs"
# Each procedure's page (docs/adding-a-procedure.md: a new procedure brings its page).
PAGES = {
    "refund": "refund.md",
    "return": "returns.md",
    "complaint": "complaints.md",
    "rush": "rush-orders.md",
    "cancellation": "cancellations.md",
    "order_change": "order-changes.md",
    "freight_claim": "freight-claims.md",
    "billing_dispute": "billing-disputes.md",
}


def diagram_source(procedure: Procedure[Any]) -> str:
    found = diagrams_in((DOCS / PAGES[procedure.name]).read_text())
    assert len(found) == 1, f"docs/{PAGES[procedure.name]} should hold one Mermaid diagram"
    return found[0]


def events_of(procedure: Procedure[Any]) -> list[str]:
    return [event.name for event in procedure.events]


def test_every_procedure_has_a_page() -> None:
    assert sorted(PAGES) == sorted(p.name for p in PROCEDURES)
    assert all((DOCS / page).is_file() for page in PAGES.values())


@pytest.mark.parametrize("procedure", PROCEDURES, ids=lambda p: p.name)
def test_the_diagram_names_every_status_and_event_of_the_procedure(
    procedure: Procedure[Any],
) -> None:
    diagram = Diagram.parse(diagram_source(procedure))
    statuses = reachable_statuses(procedure.workflow)
    assert missing_from(diagram, statuses, events_of(procedure)) == []


def test_the_statuses_are_those_the_code_sets() -> None:
    # Guards the guard: a reading that found nothing would let every diagram pass.
    assert reachable_statuses(REFUND.workflow) == {
        "received",  # the journal's first status
        "verifying",
        "awaiting_approval",  # through the approval gate
        "refunding",
        "completed",
        "rejected",
        "expired",
        "needs_attention",  # the base's fault handling
    }
    # A status only compared with (``status is not CaseStatus.COMPLETED``) is not set.
    complaint = next(p for p in PROCEDURES if p.name == "complaint")
    assert "completed" not in reachable_statuses(complaint.workflow)


@pytest.mark.parametrize("procedure", PROCEDURES, ids=lambda p: p.name)
def test_a_status_or_event_left_out_of_the_diagram_is_named(procedure: Procedure[Any]) -> None:
    source = diagram_source(procedure)
    statuses = reachable_statuses(procedure.workflow)
    for status in sorted(statuses):
        edited = Diagram.parse(without_word(source, status))
        assert f"status {status}" in missing_from(edited, statuses, events_of(procedure))
    for event in events_of(procedure):
        edited = Diagram.parse(without_word(source, event))
        assert missing_from(edited, statuses, events_of(procedure)) == [f"event {event}"]


class RefundThatWaitsForACarrier(RefundWorkflow):
    """A refund whose code gains a status its page does not draw (never registered)."""

    async def wait_for_carrier(self) -> None:
        await self.record("carrier_asked", status=CaseStatus.AWAITING_CARRIER)


def test_a_status_added_to_the_code_and_not_the_diagram_fails() -> None:
    diagram = Diagram.parse(diagram_source(REFUND))
    statuses = reachable_statuses(RefundThatWaitsForACarrier)
    assert missing_from(diagram, statuses, events_of(REFUND)) == ["status awaiting_carrier"]


def test_an_event_added_to_the_registry_and_not_the_diagram_fails() -> None:
    diagram = Diagram.parse(diagram_source(REFUND))
    statuses = reachable_statuses(REFUND.workflow)
    events = [*events_of(REFUND), "parcel_weighed"]
    assert missing_from(diagram, statuses, events) == ["event parcel_weighed"]
