"""Delegations as My work manages them: who stands in for whom, naming one, ending one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select

from infra.db import Database, Delegation, Staff
from starter.api.work_views import DelegationView


class DelegationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def delegations(self, staff_id: str, now: datetime) -> tuple[list[DelegationView], ...]:
        """Delegations ``staff_id`` gave and received that have not ended."""
        with self.db.read() as session:
            rows = session.scalars(
                select(Delegation)
                .where(
                    or_(Delegation.staff_id == staff_id, Delegation.delegate_id == staff_id),
                    Delegation.ends_at > now,
                )
                .order_by(Delegation.starts_at, Delegation.id)
            ).all()
        views = [_delegation(d, now) for d in rows]
        return (
            [v for v in views if v.staff_id == staff_id],
            [v for v in views if v.delegate_id == staff_id],
        )

    def delegate_refusal(self, staff_id: str, delegate_id: str) -> str | None:
        """Why ``delegate_id`` cannot stand in for ``staff_id``, or None."""
        if delegate_id == staff_id:
            return "you cannot stand in for yourself"
        with self.db.read() as session:
            delegate = session.get(Staff, delegate_id)
        if delegate is None or not delegate.active:
            return f"no active staff member {delegate_id!r}"
        return None

    def end_delegation(self, delegation_id: int, staff_id: str, now: datetime) -> bool:
        """End one of ``staff_id``'s own delegations now; False when it is not theirs."""
        with self.db.transaction() as session:
            row = session.get(Delegation, delegation_id)
            if row is None or row.staff_id != staff_id:
                return False
            if row.ends_at > now:
                row.ends_at = max(now, row.starts_at)
            return True


def _delegation(row: Delegation, now: datetime) -> DelegationView:
    return DelegationView(
        id=row.id,
        staff_id=row.staff_id,
        delegate_id=row.delegate_id,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        active=row.starts_at <= now < row.ends_at,
    )
