"""The management report as data: what ``python -m starter report`` computes, before it is
rendered as a table, JSON, CSV or an HTML page (docs/reports.md says what each figure means).

Durations are seconds (JSON numbers); instants are shown in the business timezone, which the
report names; money is exact (Decimal) with the currency the report names.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, computed_field


class Figures(BaseModel):
    model_config = ConfigDict(frozen=True)


class Durations(Figures):
    """How long something took, over ``count`` cases: the median and the 90th percentile
    (nearest rank), in seconds; None when nothing was measured."""

    count: int = 0
    median_seconds: float | None = None
    p90_seconds: float | None = None


class ProcedureFigures(Figures):
    """One procedure over the cases the report covers."""

    procedure: str
    opened: int
    closed: int
    still_open: int
    outcomes: dict[str, int]  # final status -> cases (closed ones only)
    time_to_decision: Durations  # an approval's request to its decision
    time_to_close: Durations  # a case's opening to its final status


class DailyCount(Figures):
    """Cases opened on one business day (in the business timezone), per procedure."""

    day: date
    procedure: str
    opened: int


class ClockFigures(Figures):
    """One SLA clock of one procedure: runs, stopped in time, breached, still running."""

    procedure: str
    clock: str
    runs: int
    on_time: int
    breached: int
    running: int


class FollowUps(Figures):
    """The complaint follow-up against its 24-hour standard. ``from_clocks`` counts the
    complaints measured by their ``complaint_follow_up`` clock, ``from_audit`` those measured
    by their audit trail (cases older than the clocks)."""

    due: int
    on_time: int
    late: int
    pending: int
    from_clocks: int
    from_audit: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def on_time_ratio(self) -> float | None:
        done = self.on_time + self.late
        return None if done == 0 else self.on_time / done


class ReasonCount(Figures):
    """Why customers cancelled, returned or complained (trend analysis)."""

    procedure: str
    reason: str
    cases: int


class PolicyException(Figures):
    """An exception to a written rule asked of an approver, and what became of it."""

    case_id: str
    procedure: str
    rule: str
    status: str  # pending | approved | rejected | expired
    amount: Decimal
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def granted(self) -> bool:
        return self.status == "approved"


class ApproverExceptions(Figures):
    """Exceptions one approver granted, per rule."""

    decided_by: str
    rule: str
    granted: int


class VipInteraction(Figures):
    """A case of a VIP customer (the SOP's report to the CS manager). The customer is named
    by id only: the report travels by email and files, contact details stay in the system."""

    case_id: str
    procedure: str
    customer_id: str
    status: str
    opened_at: datetime
    amount: Decimal | None


class Report(Figures):
    generated_at: datetime
    timezone: str
    currency: str
    since: date | None
    procedure: str | None
    procedures: tuple[ProcedureFigures, ...]
    days: tuple[DailyCount, ...]
    decision_times: tuple[float, ...]  # every approval's time to decision, seconds
    clocks: tuple[ClockFigures, ...]
    follow_ups: FollowUps
    reasons: tuple[ReasonCount, ...]
    exceptions: tuple[PolicyException, ...]
    exceptions_granted: tuple[ApproverExceptions, ...]
    vip: tuple[VipInteraction, ...]
