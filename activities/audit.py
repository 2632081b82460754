"""The audit trail: lines written inside the caller's transaction, each exactly once.

Every activity that has an effect writes the case's pending lines in the same transaction
as the effect, so a case's bookkeeping costs no activity of its own. ``(case_id, seq)`` is
unique: a retried attempt, or a line carried again after its first carrier failed, finds
the row already there and writes nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Literal, cast

from sqlalchemy import Insert, String, Table, bindparam, case, func, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert, Update

from infra.db import Approval, AuditRecord, Base, Case, SlaClock, UtcDateTime
from workflows.models import ApprovalState, AuditEntry, CaseOpening, CaseRules, CaseStatus
from workflows.sla_models import ClockMark


def write(session: Session, entries: Sequence[AuditEntry]) -> set[int]:
    """Write the lines not yet written, in seq order, each moving the case's status, step
    and approval as it goes; the seqs written now.

    Core statements, on the session's transaction, and no row read first: one INSERT for
    the lines (``ON CONFLICT DO NOTHING RETURNING seq``: the unique ``(case_id, seq)`` says
    which were written before, by an earlier attempt or a concurrent one), one UPDATE of
    the case, and one upsert each for its approval and clocks when the lines carry them."""
    if not entries:
        return set()
    case_id = entries[0].case_id
    assert all(entry.case_id == case_id for entry in entries), "one case per write"
    lines = sorted({entry.seq: entry for entry in entries}.values(), key=lambda line: line.seq)
    dialect = _dialect(session)
    written: set[int] = set(session.scalars(_insert_new(dialect), [_line_row(ln) for ln in lines]))
    new = [line for line in lines if line.seq in written]
    if not new:
        return written
    session.execute(
        _case_moved(), _case_move(case_id, new), execution_options={"synchronize_session": False}
    )
    approvals = [line.approval for line in new if line.approval is not None]
    if approvals:  # the last one stands, as if each had been written in turn
        session.execute(_approval_upsert(dialect), [_approval_row(case_id, approvals[-1])])
    write_clocks(session, [mark for line in new for mark in line.clocks])
    return written


def write_clocks(session: Session, marks: Sequence[ClockMark]) -> None:
    """Each clock's row as its marks know it: an instant once written stays, so marks
    written twice, or out of order, leave the same row. One upsert per mark, in turn."""
    if marks:
        session.execute(_clock_upsert(_dialect(session)), [_mark_row(mark) for mark in marks])


Dialect = Literal["postgresql", "sqlite"]


def _dialect(session: Session) -> Dialect:
    return "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"


def _table(entity: type[Base]) -> Table:
    return cast(Table, entity.__table__)


def _insert(dialect: Dialect, table: Table) -> postgresql.Insert | sqlite.Insert:
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


@cache
def _insert_new(dialect: Dialect) -> ReturningInsert[Any]:
    """The lines' INSERT that skips a line already there and returns the seqs it wrote."""
    table = _table(AuditRecord)
    insert = _insert(dialect, table).on_conflict_do_nothing(index_elements=["case_id", "seq"])
    return insert.returning(table.c.seq)


def _line_row(line: AuditEntry) -> dict[str, Any]:
    return {
        "case_id": line.case_id,
        "seq": line.seq,
        "at": line.at,
        "event": line.event,
        "actor": line.actor,
        "detail": line.detail,
    }


@cache
def _case_moved() -> Update:
    """The case's status and step as the last lines that name them, and its ``updated_at``
    moved on (never back: a late retry's line is older than the case)."""
    moved_at = bindparam("moved_at", type_=UtcDateTime())
    return (
        update(Case)
        .where(Case.id == bindparam("moved_case"))
        .values(
            status=func.coalesce(bindparam("new_status", type_=String()), Case.status),
            step=func.coalesce(bindparam("new_step", type_=String()), Case.step),
            updated_at=case((Case.updated_at < moved_at, moved_at), else_=Case.updated_at),
        )
    )


def _case_move(case_id: str, lines: Sequence[AuditEntry]) -> dict[str, Any]:
    status = [line.status.value for line in lines if line.status is not None]
    step = [line.step for line in lines if line.step is not None]
    return {
        "moved_case": case_id,
        "new_status": status[-1] if status else None,
        "new_step": step[-1] if step else None,
        "moved_at": max(line.at for line in lines),
    }


@cache
def _approval_upsert(dialect: Dialect) -> postgresql.Insert | sqlite.Insert:
    table = _table(Approval)
    insert = _insert(dialect, table)
    changed = {name: insert.excluded[name] for name in APPROVAL_COLUMNS}
    return insert.on_conflict_do_update(index_elements=["case_id"], set_=changed)


APPROVAL_COLUMNS = (
    "status",
    "amount",
    "reason",
    "requested_by",
    "requested_at",
    "remind_at",
    "escalate_at",
    "due_at",
    "eligible_approvers",
    "decided_by",
    "decided_at",
    "note",
    "kind",
    "rule",
)


def _approval_row(case_id: str, state: ApprovalState) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "status": state.status.value,
        "amount": state.amount,
        "reason": state.reason,
        "requested_by": state.requested_by,
        "requested_at": state.requested_at,
        "remind_at": state.remind_at,
        "escalate_at": state.escalate_at,
        "due_at": state.due_at,
        "eligible_approvers": list(state.eligible_approvers),
        "decided_by": state.decided_by,
        "decided_at": state.decided_at,
        "note": state.note,
        "kind": state.kind.value,
        "rule": state.rule,
    }


@cache
def _clock_upsert(dialect: Dialect) -> postgresql.Insert | sqlite.Insert:
    """A clock's row, or its instants filled in where still empty."""
    table = _table(SlaClock)
    insert = _insert(dialect, table)
    kept = {
        name: func.coalesce(table.c[name], insert.excluded[name])
        for name in ("warned_at", "breached_at", "stopped_at")
    }
    return insert.on_conflict_do_update(index_elements=["key"], set_=kept)


def _mark_row(mark: ClockMark) -> dict[str, Any]:
    return {
        "key": mark.key,
        "case_id": mark.case_id,
        "procedure": mark.procedure,
        "clock": mark.clock.value,
        "owner": mark.owner,
        "budget_seconds": mark.budget_seconds,
        "started_at": mark.started_at,
        "warn_at": mark.warn_at,
        "due_at": mark.due_at,
        "warned_at": mark.warned_at,
        "breached_at": mark.breached_at,
        "stopped_at": mark.stopped_at,
    }


def write_one(session: Session, entry: AuditEntry) -> bool:
    """Write one line and its effects on the case; False when it was already written."""
    return bool(write(session, [entry]))


def write_with(session: Session, pending: Sequence[AuditEntry], entry: AuditEntry) -> bool:
    """The case's pending lines and the line of the effect they ride with, in one statement;
    False when the effect's line was written before (a retry: the effect happened then, and
    must not happen again)."""
    return entry.seq in write(session, [*pending, entry])


def open_case_row(session: Session, opening: CaseOpening, rules: CaseRules) -> None:
    """Insert the case row as the case opens; ``IntegrityError`` when it exists already."""
    session.execute(_case_insert(), [_case_values(opening, rules)])


def case_row(opening: CaseOpening, rules: CaseRules) -> Case:
    """The case row as a case opens, with the rules it opens under."""
    return Case(**_case_values(opening, rules))


@cache
def _case_insert() -> Insert:
    return insert(_table(Case))


def _case_values(opening: CaseOpening, rules: CaseRules) -> dict[str, Any]:
    return {
        "id": opening.case_id,
        "type": opening.case_type.value,
        "status": CaseStatus.RECEIVED.value,
        "step": "Received",
        "order_id": opening.order_id,
        "customer_id": opening.customer_id,
        "amount": opening.amount,
        "requested_by": opening.requested_by,
        "request": opening.request,
        "rules": rules.model_dump(mode="json"),
        "opened_at": opening.opened_at,
        "updated_at": opening.opened_at,
    }
