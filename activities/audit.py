"""The audit trail: lines written inside the caller's transaction, each exactly once.

Every activity that has an effect writes the case's pending lines in the same transaction
as the effect, so a case's bookkeeping costs no activity of its own. ``(case_id, seq)`` is
unique: a retried attempt, or a line carried again after its first carrier failed, finds
the row already there and writes nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from infra.db import Approval, AuditRecord, Case, SlaClock
from workflows.models import ApprovalState, AuditEntry, CaseOpening, CaseRules, CaseStatus
from workflows.sla_models import ClockMark


def write(session: Session, entries: Sequence[AuditEntry]) -> set[int]:
    """Write the lines not yet written, in seq order, each moving the case's status, step
    and approval as it goes; the seqs written now.

    One statement for the lines (``INSERT ... ON CONFLICT DO NOTHING RETURNING seq``): the
    unique ``(case_id, seq)`` says which were written before, by an earlier attempt or a
    concurrent one, without a look-up first."""
    if not entries:
        return set()
    case_id = entries[0].case_id
    assert all(entry.case_id == case_id for entry in entries), "one case per write"
    lines = sorted({entry.seq: entry for entry in entries}.values(), key=lambda line: line.seq)
    written = set(session.scalars(_insert_new(session, lines)))
    if not written:
        return written
    case = session.get(Case, case_id)
    for entry in lines:
        if entry.seq not in written:
            continue
        if case is not None:
            if entry.status is not None:
                case.status = entry.status.value
            if entry.step is not None:
                case.step = entry.step
            case.updated_at = max(case.updated_at, entry.at)
        if entry.approval is not None:
            _save_approval(session, entry.case_id, entry.approval)
        write_clocks(session, entry.clocks)
    return written


def _insert_new(session: Session, lines: Sequence[AuditEntry]) -> ReturningInsert[int]:
    """The lines' INSERT that skips a line already there and returns the seqs it wrote."""
    rows = [
        {
            "case_id": line.case_id,
            "seq": line.seq,
            "at": line.at,
            "event": line.event,
            "actor": line.actor,
            "detail": line.detail,
        }
        for line in lines
    ]
    unique = ["case_id", "seq"]
    if session.get_bind().dialect.name == "postgresql":
        on_pg = postgresql.insert(AuditRecord).values(rows)
        return on_pg.on_conflict_do_nothing(index_elements=unique).returning(AuditRecord.seq)
    on_sqlite = sqlite.insert(AuditRecord).values(rows)
    return on_sqlite.on_conflict_do_nothing(index_elements=unique).returning(AuditRecord.seq)


def write_clocks(session: Session, marks: Sequence[ClockMark]) -> None:
    """Each clock's row as its marks know it: an instant once written stays, so marks
    written twice, or out of order, leave the same row."""
    for mark in marks:
        row = session.get(SlaClock, mark.key)
        if row is None:
            row = SlaClock(
                key=mark.key,
                case_id=mark.case_id,
                procedure=mark.procedure,
                clock=mark.clock.value,
                owner=mark.owner,
                budget_seconds=mark.budget_seconds,
                started_at=mark.started_at,
                warn_at=mark.warn_at,
                due_at=mark.due_at,
            )
            session.add(row)
        row.warned_at = row.warned_at or mark.warned_at
        row.breached_at = row.breached_at or mark.breached_at
        row.stopped_at = row.stopped_at or mark.stopped_at


def write_one(session: Session, entry: AuditEntry) -> bool:
    """Write one line and its effects on the case; False when it was already written."""
    return bool(write(session, [entry]))


def write_with(session: Session, pending: Sequence[AuditEntry], entry: AuditEntry) -> bool:
    """The case's pending lines and the line of the effect they ride with, in one statement;
    False when the effect's line was written before (a retry: the effect happened then, and
    must not happen again)."""
    return entry.seq in write(session, [*pending, entry])


def _save_approval(session: Session, case_id: str, state: ApprovalState) -> None:
    row = session.get(Approval, case_id) or Approval(case_id=case_id)
    row.status = state.status.value
    row.amount = state.amount
    row.reason = state.reason
    row.requested_by = state.requested_by
    row.requested_at = state.requested_at
    row.remind_at = state.remind_at
    row.escalate_at = state.escalate_at
    row.due_at = state.due_at
    row.eligible_approvers = list(state.eligible_approvers)
    row.decided_by = state.decided_by
    row.decided_at = state.decided_at
    row.note = state.note
    row.kind = state.kind.value
    row.rule = state.rule
    session.add(row)


def case_row(opening: CaseOpening, rules: CaseRules) -> Case:
    """The case row as a case opens, with the rules it opens under."""
    return Case(
        id=opening.case_id,
        type=opening.case_type.value,
        status=CaseStatus.RECEIVED.value,
        step="Received",
        order_id=opening.order_id,
        customer_id=opening.customer_id,
        amount=opening.amount,
        requested_by=opening.requested_by,
        request=opening.request,
        rules=rules.model_dump(mode="json"),
        opened_at=opening.opened_at,
        updated_at=opening.opened_at,
    )
