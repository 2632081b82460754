"""The API's database side: staff tokens, idempotency claims, and the audit copy of cases.

Synchronous, as SQLAlchemy sessions are: routes call it on a worker thread
(``run_in_threadpool``), never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from activities.staff import StaffDirectory
from infra.db import ApiRequest, Approval, AuditRecord, Case, Database, Delegation
from starter.api_models import ApprovalView, CaseView, PendingApproval
from workflows.models import ApprovalStatus, CaseStatus, CaseType, StaffMember, TimelineEntry


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    body_hash: str
    label: str  # how a 409 names it


@dataclass(frozen=True)
class Claim:
    case_id: str
    new: bool
    conflict: bool


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.staff = StaffDirectory(db)

    def ping(self) -> None:
        with self.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def authenticate(self, token: str) -> StaffMember | None:
        return self.staff.authenticate(token)

    def acting_for(self, staff_id: str, at: datetime) -> list[str]:
        """Whom ``staff_id`` stands in for at ``at`` (delegations)."""
        with self.db.transaction() as session:
            rows = session.scalars(
                select(Delegation.staff_id).where(
                    Delegation.delegate_id == staff_id,
                    Delegation.starts_at <= at,
                    Delegation.ends_at > at,
                )
            )
            return sorted(set(rows))

    def claim(self, key: str, body_hash: str, case_id: str, at: datetime) -> Claim:
        """Record ``key`` for ``case_id``, or say how an earlier request with it compares."""
        try:
            with self.db.transaction() as session:
                existing = session.get(ApiRequest, key)
                if existing is None:
                    session.add(
                        ApiRequest(key=key, body_hash=body_hash, case_id=case_id, created_at=at)
                    )
                    return Claim(case_id, new=True, conflict=False)
                return _compare(existing, body_hash)
        except IntegrityError:
            # A concurrent request with the same key committed first: answer as a repeat.
            with self.db.transaction() as session:
                existing = session.get(ApiRequest, key)
                if existing is None:
                    raise
                return _compare(existing, body_hash)

    def release(self, keys: list[IdempotencyKey]) -> None:
        """Forget claims whose start failed (matching the body, so only this request's)."""
        if not keys:
            return
        with self.db.transaction() as session:
            for key in keys:
                row = session.get(ApiRequest, key.key)
                if row is not None and row.body_hash == key.body_hash:
                    session.delete(row)

    def case_status(self, case_id: str) -> CaseStatus | None:
        with self.db.transaction() as session:
            status = session.scalar(select(Case.status).where(Case.id == case_id))
            return None if status is None else CaseStatus(status)

    def case_times(self, case_id: str) -> tuple[datetime, datetime] | None:
        with self.db.transaction() as session:
            case = session.get(Case, case_id)
            return None if case is None else (case.opened_at, case.updated_at)

    def approval_status(self, case_id: str) -> str | None:
        """The recorded status of the case's approval request (None: it never asked)."""
        with self.db.transaction() as session:
            return session.scalar(select(Approval.status).where(Approval.case_id == case_id))

    def case_record(self, case_id: str) -> CaseView | None:
        """The case as its audit copy tells it, for when the workflow cannot answer."""
        with self.db.transaction() as session:
            case = session.get(Case, case_id)
            if case is None:
                return None
            approval = session.get(Approval, case_id)
            trail = session.scalars(
                select(AuditRecord).where(AuditRecord.case_id == case_id).order_by(AuditRecord.seq)
            ).all()
            return CaseView(
                case_id=case.id,
                type=CaseType(case.type),
                status=CaseStatus(case.status),
                step=case.step,
                order_id=case.order_id,
                customer_id=case.customer_id,
                amount=case.amount,
                requested_by=case.requested_by,
                approval=None if approval is None else _approval_view(approval),
                timeline=tuple(
                    TimelineEntry(at=r.at, event=r.event, actor=r.actor, detail=r.detail)
                    for r in trail
                ),
                opened_at=case.opened_at,
                updated_at=case.updated_at,
                source="database",
            )

    def pending_approvals(self, staff_id: str) -> list[PendingApproval]:
        """Pending approvals ``staff_id`` may decide, oldest first."""
        with self.db.transaction() as session:
            rows = session.execute(
                select(Approval, Case)
                .join(Case, Case.id == Approval.case_id)
                .where(Approval.status == ApprovalStatus.PENDING.value)
                .order_by(Approval.requested_at, Approval.case_id)
            ).all()
            # Eligibility is a JSON list; filtering it here keeps one query for both backends.
            return [
                PendingApproval(
                    case_id=case.id,
                    type=case.type,
                    order_id=case.order_id,
                    customer_id=case.customer_id,
                    amount=approval.amount,
                    reason=approval.reason,
                    requested_by=approval.requested_by,
                    requested_at=approval.requested_at,
                    remind_at=approval.remind_at,
                    escalate_at=approval.escalate_at,
                    due_at=approval.due_at,
                )
                for approval, case in rows
                if staff_id in approval.eligible_approvers
            ]


def _compare(existing: ApiRequest, body_hash: str) -> Claim:
    return Claim(existing.case_id, new=False, conflict=existing.body_hash != body_hash)


def _approval_view(row: Approval) -> ApprovalView:
    return ApprovalView(
        status=ApprovalStatus(row.status),
        amount=row.amount,
        reason=row.reason,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        remind_at=row.remind_at,
        escalate_at=row.escalate_at,
        due_at=row.due_at,
        eligible_approvers=tuple(row.eligible_approvers),
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        note=row.note,
    )
