"""The queries behind My work and the case page: what each open case waits for, and whom.

What a case waits for is derived, never stored: its status against the registry's events
(``Event.awaited_in``, narrowed by ``awaited_after`` / ``awaited_once`` over the audit
trail), the events' roles against the caller's role, and for a decision the approval row's
eligible approvers (the gate's own list: the caller's authority and delegations). The list
is one SQL query (plus one count) filtered, sorted and paged in the database, and a fixed
number of lookups for the page shown, whatever the number of open cases.

Synchronous, as SQLAlchemy sessions are: routes call it on a worker thread.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from infra.db import (
    Approval,
    AuditRecord,
    Case,
    Cents,
    Customer,
    Database,
    Delegation,
    ReturnAuthorization,
    SlaClock,
)
from registry import BY_CASE_TYPE, Event, Procedure
from settings import Settings
from starter.api.business_time import clock
from starter.api.work_views import (
    ApprovalAsk,
    Clock,
    DoneItem,
    DonePage,
    WorkAction,
    WorkItem,
    WorkPage,
)
from workflows.calendar import BusinessCalendar
from workflows.models import ApprovalStatus, CaseStatus, CaseType, StaffMember

Sort = Literal["deadline", "oldest", "amount"]
PENDING = ApprovalStatus.PENDING.value
AWAITING_APPROVAL = CaseStatus.AWAITING_APPROVAL.value
AWAITING_RETURN = CaseStatus.AWAITING_RETURN.value
DECISION = WorkAction(kind="decision", name="decision", title="Approve or reject")
RELATED_CASES = 20


@dataclass(frozen=True)
class WorkFilter:
    procedure: CaseType | None = None
    status: CaseStatus | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    search: str | None = None
    sort: Sort = "deadline"
    page: int = 1
    page_size: int = 25


def event_title(event: Event) -> str:
    return event.name.replace("_", " ").capitalize()


def sendable(procedure: Procedure[Any], role: str) -> list[Event]:
    """The events of ``procedure`` a person of ``role`` may send that a case waits for."""
    return [e for e in procedure.events if e.awaited_in and role in e.roles]


class WorkStore:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    # ---- the list ---------------------------------------------------------------------------

    def _eligible(self, staff_id: str) -> ColumnElement[bool]:
        """``staff_id`` is in the approval's eligible approvers (a JSON list) on either backend."""
        if self.db.engine.dialect.name == "postgresql":
            return cast(Approval.eligible_approvers, JSONB).contains([staff_id])
        listed = func.json_each(Approval.eligible_approvers).table_valued("value")
        return exists(select(literal(1)).select_from(listed).where(listed.c.value == staff_id))

    def _waits(self, staff: StaffMember) -> ColumnElement[bool]:
        """Open cases waiting for something ``staff`` may do, as one SQL condition."""
        clauses: list[ColumnElement[bool]] = [
            and_(
                Approval.status == PENDING,
                Case.status == AWAITING_APPROVAL,
                self._eligible(staff.id),
            )
        ]
        for case_type, procedure in BY_CASE_TYPE.items():
            for event in sendable(procedure, staff.role):
                condition = [
                    Case.type == case_type.value,
                    Case.status.in_([s.value for s in event.awaited_in]),
                ]
                if event.awaited_after:
                    condition.append(_recorded(event.awaited_after))
                if event.awaited_once:
                    condition.append(~_recorded(event.name))
                clauses.append(and_(*condition))
        return or_(*clauses) if clauses else false()

    def open_work(self, staff: StaffMember, filters: WorkFilter, now: datetime) -> WorkPage:
        """A page of the open cases waiting for ``staff``, nearest deadline (or oldest) first."""
        sla_due = (
            select(func.min(SlaClock.due_at))
            .where(SlaClock.case_id == Case.id, SlaClock.stopped_at.is_(None))
            .correlate(Case)
            .scalar_subquery()
        )
        pending = and_(Approval.status == PENDING, Case.status == AWAITING_APPROVAL)
        deadline = case(
            (pending, Approval.escalate_at),
            else_=func.coalesce(
                sla_due,
                case((Case.status == AWAITING_RETURN, ReturnAuthorization.expires_at)),
            ),
        )
        since = case((pending, Approval.requested_at), else_=Case.updated_at)
        amount = func.coalesce(Approval.amount, Case.amount, type_=Cents)
        conditions = [self._waits(staff)]
        if filters.procedure is not None:
            conditions.append(Case.type == filters.procedure.value)
        if filters.status is not None:
            conditions.append(Case.status == filters.status.value)
        if filters.min_amount is not None:
            conditions.append(amount >= filters.min_amount)
        if filters.max_amount is not None:
            conditions.append(amount <= filters.max_amount)
        if filters.search:
            term = filters.search.strip().lower()
            conditions.append(
                or_(
                    *(
                        func.lower(column).contains(term, autoescape=True)
                        for column in (
                            Case.id,
                            Case.order_id,
                            Case.customer_id,
                            ReturnAuthorization.ra_number,
                            Customer.name,
                        )
                    )
                )
            )
        base = (
            select(
                Case,
                Approval,
                ReturnAuthorization.ra_number,
                ReturnAuthorization.expires_at,
                Customer.name,
                Customer.vip,
                since.label("since"),
            )
            .outerjoin(Approval, Approval.case_id == Case.id)
            .outerjoin(ReturnAuthorization, ReturnAuthorization.case_id == Case.id)
            .outerjoin(Customer, Customer.id == Case.customer_id)
            .where(*conditions)
        )
        order: list[Any]
        if filters.sort == "oldest":
            order = [since.asc(), Case.id]
        elif filters.sort == "amount":
            order = [amount.desc().nulls_last(), since.asc(), Case.id]
        else:
            order = [deadline.asc().nulls_last(), since.asc(), Case.id]
        with self.db.read() as session:
            total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
            rows = session.execute(
                base.order_by(*order)
                .limit(filters.page_size)
                .offset((filters.page - 1) * filters.page_size)
            ).all()
            ids = [row[0].id for row in rows]
            clocks = open_clocks(session, ids)
            recorded = recorded_events(session, ids, staff.role)
            acting_for = _acting_for(session, staff.id, now)
        items = []
        for case_row, approval, ra_number, ra_expires, name, vip, waiting in rows:
            calendar = self.calendar_for(case_row)
            actions = self.actions_for(case_row, approval, staff, recorded[case_row.id])
            deciding = approval is not None and any(a.kind == "decision" for a in actions)
            items.append(
                WorkItem(
                    case_id=case_row.id,
                    type=case_row.type,
                    status=case_row.status,
                    step=case_row.step,
                    order_id=case_row.order_id,
                    customer_id=case_row.customer_id,
                    customer_name=name,
                    vip=bool(vip),
                    amount=approval.amount if deciding else case_row.amount,
                    ra_number=ra_number,
                    requested_by=case_row.requested_by,
                    waiting_since=_utc(waiting),
                    clock=_first_clock(
                        calendar,
                        now,
                        approval if deciding else None,
                        clocks[case_row.id],
                        ra_expires if case_row.status == AWAITING_RETURN else None,
                    ),
                    actions=actions,
                    approval=_ask(approval) if deciding else None,
                    standing_in_for=(
                        acting_for
                        if deciding and staff.role not in self.settings.approver_roles
                        else []
                    ),
                )
            )
        return WorkPage(
            items=items,
            total=total,
            page=filters.page,
            page_size=filters.page_size,
            currency=self.settings.currency,
            timezone=self.settings.business_timezone,
            procedures=[t.value for t in BY_CASE_TYPE],
            statuses=[s.value for s in CaseStatus if not s.is_final],
        )

    def calendar_for(self, case_row: Case) -> BusinessCalendar:
        """The business calendar the case counts its deadlines in (recorded with its rules
        when it opened), else the one in force."""
        recorded = case_row.rules.get("calendar") if isinstance(case_row.rules, dict) else None
        if isinstance(recorded, dict):
            found = _recorded_calendar(json.dumps(recorded, sort_keys=True))
            if found is not None:
                return found
        return self.settings.calendar

    def actions_for(
        self, case_row: Case, approval: Approval | None, staff: StaffMember, recorded: set[str]
    ) -> list[WorkAction]:
        """What ``staff`` may do on the case now: the same rule as ``_waits``, for one row."""
        actions = []
        if (
            approval is not None
            and approval.status == PENDING
            and case_row.status == AWAITING_APPROVAL
            and staff.id in approval.eligible_approvers
        ):
            actions.append(DECISION)
        procedure = BY_CASE_TYPE.get(CaseType(case_row.type))
        for event in sendable(procedure, staff.role) if procedure else []:
            if case_row.status not in event.awaited_in:
                continue
            if event.awaited_after and event.awaited_after not in recorded:
                continue
            if event.awaited_once and event.name in recorded:
                continue
            actions.append(WorkAction(kind="event", name=event.name, title=event_title(event)))
        return actions

    # ---- done by me -------------------------------------------------------------------------

    def done_by(self, staff_id: str, page: int, page_size: int) -> DonePage:
        """What ``staff_id`` did (the audit lines naming them), newest first."""
        base = (
            select(AuditRecord, Case.type, Case.status, Case.order_id, Case.amount)
            .join(Case, Case.id == AuditRecord.case_id)
            .where(AuditRecord.actor == staff_id)
        )
        with self.db.read() as session:
            total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
            rows = session.execute(
                base.order_by(AuditRecord.at.desc(), AuditRecord.id.desc())
                .limit(page_size)
                .offset((page - 1) * page_size)
            ).all()
        return DonePage(
            items=[
                DoneItem(
                    case_id=record.case_id,
                    type=case_type,
                    at=record.at,
                    event=record.event,
                    detail=record.detail,
                    status=status,
                    order_id=order_id,
                    amount=amount,
                )
                for record, case_type, status, order_id, amount in rows
            ],
            total=total,
            page=page,
            page_size=page_size,
        )


# ---- helpers -------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _recorded_calendar(text: str) -> BusinessCalendar | None:
    try:
        return BusinessCalendar.model_validate_json(text)
    except ValidationError:
        return None


def _recorded(event: str) -> ColumnElement[bool]:
    return exists(
        select(literal(1)).where(AuditRecord.case_id == Case.id, AuditRecord.event == event)
    )


def _narrowing_events(role: str) -> set[str]:
    names: set[str] = set()
    for procedure in BY_CASE_TYPE.values():
        for event in sendable(procedure, role):
            if event.awaited_after:
                names.add(event.awaited_after)
            if event.awaited_once:
                names.add(event.name)
    return names


def recorded_events(session: Session, ids: Sequence[str], role: str) -> dict[str, set[str]]:
    """The audit events that narrow ``role``'s waits, recorded on each of ``ids``."""
    found: dict[str, set[str]] = defaultdict(set)
    names = _narrowing_events(role)
    if ids and names:
        for case_id, event in session.execute(
            select(AuditRecord.case_id, AuditRecord.event)
            .where(AuditRecord.case_id.in_(ids), AuditRecord.event.in_(sorted(names)))
            .distinct()
        ):
            found[case_id].add(event)
    return found


def open_clocks(session: Session, ids: Sequence[str]) -> dict[str, list[SlaClock]]:
    clocks: dict[str, list[SlaClock]] = defaultdict(list)
    if ids:
        for row in session.scalars(
            select(SlaClock)
            .where(SlaClock.case_id.in_(ids), SlaClock.stopped_at.is_(None))
            .order_by(SlaClock.due_at)
        ):
            clocks[row.case_id].append(row)
    return clocks


def _acting_for(session: Session, staff_id: str, now: datetime) -> list[str]:
    rows = session.scalars(
        select(Delegation.staff_id).where(
            Delegation.delegate_id == staff_id,
            Delegation.starts_at <= now,
            Delegation.ends_at > now,
        )
    )
    return sorted(set(rows))


# A customer's deadline lapses; the company's service levels fall due (docs/sla-clocks.md).
_LAPSES = {
    "ra_expiry": "RA expires",
    "rush_fee_acceptance": "quote expires",
    "order_change_quote": "quote expires",
    "cancellation_return_offer": "return offer expires",
    "satisfaction_wait": "customer's answer expected",
}


def clock_name(name: str) -> str:
    return _LAPSES.get(name) or f"{name.replace('_', ' ')} due"


def _first_clock(
    calendar: BusinessCalendar,
    now: datetime,
    approval: Approval | None,
    clocks: list[SlaClock],
    ra_expires: datetime | None,
) -> Clock | None:
    """The deadline the list shows: the approval's next step, else the nearest SLA clock,
    else a return's RA expiry."""
    if approval is not None:
        if approval.escalate_at > now:
            return clock(calendar, "escalates", approval.escalate_at, now, approval.remind_at)
        return clock(calendar, "expires", approval.due_at, now)
    if clocks:
        first = clocks[0]
        return clock(calendar, clock_name(first.clock), first.due_at, now, first.warn_at)
    if ra_expires is not None:
        return clock(calendar, "RA expires", _utc(ra_expires), now)
    return None


def _ask(approval: Approval) -> ApprovalAsk:
    return ApprovalAsk(
        amount=approval.amount,
        reason=approval.reason,
        requested_by=approval.requested_by,
        requested_at=approval.requested_at,
        escalate_at=approval.escalate_at,
        due_at=approval.due_at,
        kind=approval.kind,
        rule=approval.rule,
    )


def _utc(value: Any) -> datetime:
    """An instant read through a SQL expression (no column type on SQLite): as UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
