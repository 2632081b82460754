"""The report's figures, read from the database (never from Temporal's history): cases,
approvals, SLA clocks, audit lines and customers (infra/db.py)."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from infra.db import Approval, AuditRecord, Case, Customer, Database, SlaClock
from settings import Settings
from starter.report.models import (
    ApproverExceptions,
    ClockFigures,
    DailyCount,
    Durations,
    FollowUps,
    PolicyException,
    ProcedureFigures,
    ReasonCount,
    Report,
    VipInteraction,
)
from workflows.models import ApprovalKind, CaseStatus, CaseType

# The request field that says why, per procedure that asks the customer for a reason.
REASON_FIELDS = {
    CaseType.CANCELLATION.value: "reason",
    CaseType.RETURN.value: "reason",
    CaseType.COMPLAINT.value: "category",
}
FOLLOW_UP_CLOCK = "complaint_follow_up"
# The audit line of the complaint's follow-up to the customer (workflows/complaints.py).
FOLLOW_UP_EVENT = "follow_up_sent"
# The follow-up is due at 24 hours sharp and its emails go out in the moments after (each a
# step of its own): that is on time. A follow-up held up longer (a worker down) is late.
FOLLOW_UP_GRACE = timedelta(minutes=1)
DECIDED = ("approved", "rejected")
# An approval and its case's type (the procedure).
ApprovalRow = tuple[Approval, str]
_DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def percentile(values: Sequence[float], p: int) -> float:
    """The nearest-rank percentile: the smallest value with at least p% of them at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def durations(values: Sequence[float]) -> Durations:
    if not values:
        return Durations()
    return Durations(
        count=len(values),
        median_seconds=float(statistics.median(values)),
        p90_seconds=float(percentile(values, 90)),
    )


def is_final(status: str) -> bool:
    return status in set(CaseStatus) and CaseStatus(status).is_final


def start_of(day: date, zone: ZoneInfo) -> datetime:
    """Midnight of ``day`` in the business timezone, as a UTC instant."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


class ReportService:
    """Computes the report over the cases opened since a business day, of one procedure or
    all. Every figure is about those cases: an approval, a clock or an audit line counts when
    its case does."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.zone = ZoneInfo(settings.business_timezone)

    def build(
        self,
        *,
        since: date | None = None,
        procedure: str | None = None,
        now: datetime | None = None,
    ) -> Report:
        with self.db.read() as session:
            covered = self._covered(since, procedure)
            cases = session.scalars(select(Case).where(*covered)).all()
            approvals: list[ApprovalRow] = [
                (approval, kind)
                for approval, kind in session.execute(
                    select(Approval, Case.type).join(Case).where(*covered)
                )
            ]
            clocks = session.scalars(select(SlaClock).join(Case).where(*covered)).all()
            vip_cases = session.scalars(
                select(Case)
                .join(Customer, Customer.id == Case.customer_id)
                .where(*covered, Customer.vip.is_(True))
            ).all()
            follow_ups = self._follow_ups(
                session, [c for c in cases if c.type == "complaint"], covered
            )
        return Report(
            generated_at=(now or datetime.now(UTC)).astimezone(self.zone),
            timezone=self.settings.business_timezone,
            currency=self.settings.currency,
            since=since,
            procedure=procedure,
            procedures=self._procedures(cases, [a for a, _ in approvals], clocks),
            days=self._days(cases),
            decision_times=tuple(sorted(_decision_seconds(a for a, _ in approvals))),
            clocks=_clocks(clocks),
            follow_ups=self._follow_up_figures(follow_ups, clocks),
            reasons=_reasons(cases),
            exceptions=tuple(self._exceptions(approvals)),
            exceptions_granted=_granted(approvals),
            vip=tuple(
                VipInteraction(
                    case_id=case.id,
                    procedure=case.type,
                    customer_id=case.customer_id,
                    status=case.status,
                    opened_at=case.opened_at.astimezone(self.zone),
                    amount=case.amount,
                )
                for case in sorted(vip_cases, key=lambda c: (c.opened_at, c.id))
            ),
        )

    def _covered(self, since: date | None, procedure: str | None) -> list[ColumnElement[bool]]:
        """The conditions on ``cases`` of the cases the report covers."""
        conditions: list[ColumnElement[bool]] = []
        if since is not None:
            conditions.append(Case.opened_at >= start_of(since, self.zone))
        if procedure is not None:
            conditions.append(Case.type == procedure)
        return conditions

    def _procedures(
        self, cases: Sequence[Case], approvals: Sequence[Approval], clocks: Sequence[SlaClock]
    ) -> tuple[ProcedureFigures, ...]:
        by_type: dict[str, list[Case]] = defaultdict(list)
        for case in cases:
            by_type[case.type].append(case)
        type_of = {case.id: case.type for case in cases}
        decided: dict[str, list[float]] = defaultdict(list)
        for approval in approvals:
            seconds = _decision_seconds((approval,))
            decided[type_of[approval.case_id]].extend(seconds)
        figures = []
        for kind in sorted(by_type):
            group = by_type[kind]
            closed = [c for c in group if is_final(c.status)]
            figures.append(
                ProcedureFigures(
                    procedure=kind,
                    opened=len(group),
                    closed=len(closed),
                    still_open=len(group) - len(closed),
                    outcomes=dict(sorted(Counter(c.status for c in closed).items())),
                    time_to_decision=durations(decided[kind]),
                    time_to_close=durations(
                        [(c.updated_at - c.opened_at).total_seconds() for c in closed]
                    ),
                )
            )
        return tuple(figures)

    def _days(self, cases: Sequence[Case]) -> tuple[DailyCount, ...]:
        counts = Counter((c.opened_at.astimezone(self.zone).date(), c.type) for c in cases)
        return tuple(
            DailyCount(day=day, procedure=kind, opened=n)
            for (day, kind), n in sorted(counts.items())
        )

    def _follow_ups(
        self,
        session: Session,
        complaints: Sequence[Case],
        covered: Sequence[ColumnElement[bool]],
    ) -> dict[str, str]:
        """Each complaint's follow-up judged from its audit trail: ``on_time``, ``late`` or
        ``pending`` (the first follow_up_sent line against opening + FOLLOW_UP_WITHIN)."""
        if not complaints:
            return {}
        sent: dict[str, datetime] = {}
        rows = session.execute(
            select(AuditRecord.case_id, AuditRecord.at)
            .join(Case)
            .where(*covered, Case.type == "complaint", AuditRecord.event == FOLLOW_UP_EVENT)
            .order_by(AuditRecord.case_id, AuditRecord.seq)
        ).all()
        for case_id, sent_at in rows:
            sent.setdefault(case_id, sent_at)
        judged: dict[str, str] = {}
        for case in complaints:
            due = case.opened_at + self._follow_up_within(case) + FOLLOW_UP_GRACE
            at = sent.get(case.id)
            if at is None:
                judged[case.id] = "pending" if not is_final(case.status) else "none"
            else:
                judged[case.id] = "on_time" if at <= due else "late"
        return judged

    def _follow_up_within(self, case: Case) -> timedelta:
        # The case's own rules, recorded when it opened; the setting for a row without them.
        recorded = (case.rules or {}).get("complaint", {}).get("follow_up_within")
        if recorded is not None:
            try:
                return _DURATION.validate_python(recorded)
            except ValidationError:
                pass
        return self.settings.follow_up_within

    def _follow_up_figures(
        self, from_audit: dict[str, str], clocks: Sequence[SlaClock]
    ) -> FollowUps:
        verdicts: dict[str, str] = {}
        for clock in clocks:
            if clock.clock != FOLLOW_UP_CLOCK:
                continue
            verdict = _clock_verdict(clock)
            # A case judged by several runs of the clock is late if any run was.
            if verdicts.get(clock.case_id) != "late":
                verdicts[clock.case_id] = verdict
        by_clock = set(verdicts)
        audited = {k: v for k, v in from_audit.items() if k not in by_clock and v != "none"}
        verdicts |= audited
        tally = Counter(verdicts.values())
        return FollowUps(
            due=len(verdicts),
            on_time=tally["on_time"],
            late=tally["late"],
            pending=tally["pending"],
            from_clocks=len(by_clock),
            from_audit=len(audited),
        )

    def _exceptions(self, rows: Sequence[ApprovalRow]) -> Iterable[PolicyException]:
        for approval, kind in sorted(rows, key=lambda r: (r[0].requested_at, r[0].case_id)):
            if approval.kind != ApprovalKind.POLICY_EXCEPTION.value:
                continue
            yield PolicyException(
                case_id=approval.case_id,
                procedure=kind,
                rule=approval.rule or "-",
                status=approval.status,
                amount=approval.amount,
                requested_by=approval.requested_by,
                requested_at=approval.requested_at.astimezone(self.zone),
                decided_by=approval.decided_by,
                decided_at=(
                    approval.decided_at.astimezone(self.zone) if approval.decided_at else None
                ),
            )


def _decision_seconds(approvals: Iterable[Approval]) -> list[float]:
    return [
        (a.decided_at - a.requested_at).total_seconds()
        for a in approvals
        if a.status in DECIDED and a.decided_at is not None
    ]


def _clock_verdict(clock: SlaClock) -> str:
    if clock.breached_at is not None:
        return "late"
    if clock.stopped_at is None:
        return "pending"
    return "on_time" if clock.stopped_at <= clock.due_at else "late"


def _clocks(clocks: Sequence[SlaClock]) -> tuple[ClockFigures, ...]:
    tally: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for clock in clocks:
        counts = tally[(clock.procedure, clock.clock)]
        counts["runs"] += 1
        if clock.breached_at is not None:
            counts["breached"] += 1
        elif clock.stopped_at is None:
            counts["running"] += 1
        elif clock.stopped_at <= clock.due_at:
            counts["on_time"] += 1
    return tuple(
        ClockFigures(
            procedure=procedure,
            clock=name,
            runs=c["runs"],
            on_time=c["on_time"],
            breached=c["breached"],
            running=c["running"],
        )
        for (procedure, name), c in sorted(tally.items())
    )


def _reasons(cases: Sequence[Case]) -> tuple[ReasonCount, ...]:
    counts: Counter[tuple[str, str]] = Counter()
    for case in cases:
        field = REASON_FIELDS.get(case.type)
        value = (case.request or {}).get(field) if field else None
        if isinstance(value, str) and value.strip():
            counts[(case.type, " ".join(value.lower().split()))] += 1
    return tuple(
        ReasonCount(procedure=kind, reason=reason, cases=n)
        for (kind, reason), n in sorted(
            counts.items(), key=lambda item: (item[0][0], -item[1], item[0][1])
        )
    )


def _granted(rows: Sequence[ApprovalRow]) -> tuple[ApproverExceptions, ...]:
    counts: Counter[tuple[str, str]] = Counter(
        (approval.decided_by or "-", approval.rule or "-")
        for approval, _ in rows
        if approval.kind == ApprovalKind.POLICY_EXCEPTION.value and approval.status == "approved"
    )
    return tuple(
        ApproverExceptions(decided_by=who, rule=rule, granted=n)
        for (who, rule), n in sorted(counts.items())
    )
