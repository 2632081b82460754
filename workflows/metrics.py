"""The product's metrics recorded by workflow code: cases opened and closed, time to decision.

They go through the workflow's own meter (``workflow.metric_meter()``), so they appear on the
worker's Prometheus endpoint beside Temporal's metrics, and they are replay-safe: the meter
records nothing while a workflow replays its history, so a case that is evicted from the
worker's cache and replayed (or moved to another worker) is not counted again. Recording a
metric adds no command to the history: no ``workflow.patched`` is needed around it.

Every name starts with ``casework_``; docs/metrics.md lists them all.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

CASES_OPENED = "casework_cases_opened"
CASES_CLOSED = "casework_cases_closed"
DECISION_SECONDS = "casework_approval_decision_seconds"
SLA_WARNINGS = "casework_sla_warnings"
SLA_BREACHES = "casework_sla_breaches"

# A manager's decision takes minutes to days (business hours: reminders at 4, escalation at 8,
# expiry after 3 business days), so its buckets are in those units, in seconds.
DECISION_BUCKETS: tuple[float, ...] = (
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    2 * 3600.0,
    4 * 3600.0,
    8 * 3600.0,
    24 * 3600.0,
    2 * 86400.0,
    3 * 86400.0,
    7 * 86400.0,
)

# Histograms whose buckets are not Temporal's defaults (given to the Prometheus exporter).
HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {DECISION_SECONDS: DECISION_BUCKETS}


def case_opened(procedure: str) -> None:
    """A case of ``procedure`` started (counted once, as it opens)."""
    opened = workflow.metric_meter().create_counter(CASES_OPENED, "Cases opened, per procedure")
    opened.add(1, {"procedure": procedure})


def case_closed(procedure: str, outcome: str) -> None:
    """A case of ``procedure`` ended with ``outcome`` (its final status)."""
    closed = workflow.metric_meter().create_counter(
        CASES_CLOSED, "Cases closed, per procedure and outcome (the final status)"
    )
    closed.add(1, {"procedure": procedure, "outcome": outcome})


def decision_taken(procedure: str, decision: str, waited: timedelta) -> None:
    """An approver's ``decision`` (approved or rejected) landed ``waited`` after the request."""
    seconds = workflow.metric_meter().create_histogram_float(
        DECISION_SECONDS,
        "Time from an approval request to the approver's decision, per procedure and decision",
        "s",
    )
    seconds.record(max(waited.total_seconds(), 0.0), {"procedure": procedure, "decision": decision})


def sla_warned(procedure: str, clock: str) -> None:
    """An SLA clock reached 75% of its business-time budget (workflows/sla.py)."""
    warned = workflow.metric_meter().create_counter(
        SLA_WARNINGS, "SLA clocks that reached 75% of their business-time budget"
    )
    warned.add(1, {"procedure": procedure, "clock": clock})


def sla_breached(procedure: str, clock: str) -> None:
    """An SLA clock passed its due instant unmet (workflows/sla.py)."""
    breached = workflow.metric_meter().create_counter(
        SLA_BREACHES, "SLA clocks that passed their due instant unmet"
    )
    breached.add(1, {"procedure": procedure, "clock": clock})
