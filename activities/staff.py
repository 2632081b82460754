"""The staff directory: who people are, what they may approve, their API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from decimal import Decimal
from functools import cache

from sqlalchemy import Select, and_, bindparam, select

from infra.db import Database, Delegation, Staff, UtcDateTime
from workflows.models import ApproverDirectory, StaffMember

ROLES = ("agent", "backend", "warehouse", "supervisor", "manager", "qa", "accounting")


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a plain SHA-256 is enough (no password stretching).
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "cw_" + secrets.token_urlsafe(32)


class StaffDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        *,
        staff_id: str,
        name: str,
        email: str,
        role: str,
        approval_limit: Decimal = Decimal("0"),
        token: str | None = None,
    ) -> str:
        """Add a person; returns their API token, which is stored only as a hash."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if approval_limit < 0:
            raise ValueError("approval limit must not be negative")
        token = token or new_token()
        with self._db.transaction() as session:
            if session.get(Staff, staff_id) is not None:
                raise ValueError(f"staff id {staff_id!r} already exists")
            session.add(
                Staff(
                    id=staff_id,
                    name=name,
                    email=email,
                    role=role,
                    approval_limit=approval_limit,
                    token_hash=hash_token(token),
                )
            )
        return token

    def authenticate(self, token: str) -> StaffMember | None:
        with self._db.read() as session:
            staff = session.scalar(
                select(Staff).where(Staff.token_hash == hash_token(token), Staff.active)
            )
            return None if staff is None else _member(staff)

    def delegate(
        self, staff_id: str, delegate_id: str, starts_at: datetime, ends_at: datetime
    ) -> None:
        """``staff_id`` is away; ``delegate_id`` decides in their place for the period."""
        if ends_at <= starts_at:
            raise ValueError("a delegation must end after it starts")
        with self._db.transaction() as session:
            for person in (staff_id, delegate_id):
                if session.get(Staff, person) is None:
                    raise ValueError(f"unknown staff id {person!r}")
            session.add(
                Delegation(
                    staff_id=staff_id, delegate_id=delegate_id, starts_at=starts_at, ends_at=ends_at
                )
            )

    def approver_directory(self, at: datetime) -> ApproverDirectory:
        """Everyone active, with those standing in for someone at ``at`` marked as such."""
        with self._db.read() as session:
            people = session.scalars(_active_staff()).all()
            acting = {
                d.delegate_id: d.staff_id
                for d in session.scalars(_delegations_at(), {"delegated_at": at})
            }
            return ApproverDirectory(
                staff=tuple(_member(p, acting_for=acting.get(p.id)) for p in people)
            )

    def is_inactive(self, staff_id: str) -> bool:
        """True for someone in the directory who has been deactivated."""
        with self._db.read() as session:
            active = session.scalar(_is_active(), {"person": staff_id})
            return active is not None and not active

    def contacts(self, staff_ids: tuple[str, ...]) -> dict[str, str]:
        """Email address by staff id, for those of ``staff_ids`` who are active."""
        if not staff_ids:
            return {}
        with self._db.read() as session:
            rows = session.execute(_active_contacts(), {"people": list(staff_ids)}).all()
            return {staff_id: email for staff_id, email in sorted(rows)}

    def emails(self, staff_ids: tuple[str, ...]) -> list[str]:
        if not staff_ids:
            return []
        with self._db.read() as session:
            rows = session.scalars(_emails(), {"people": list(staff_ids)}).all()
            return sorted(rows)


# The look-ups a case makes are built once and run with parameters: building a statement
# costs more than running it.
@cache
def _active_staff() -> Select[Staff]:
    return select(Staff).where(Staff.active).order_by(Staff.id)


@cache
def _delegations_at() -> Select[Delegation]:
    at = bindparam("delegated_at", type_=UtcDateTime())
    return select(Delegation).where(and_(Delegation.starts_at <= at, Delegation.ends_at > at))


@cache
def _is_active() -> Select[bool]:
    return select(Staff.active).where(Staff.id == bindparam("person"))


@cache
def _active_contacts() -> Select[str, str]:
    people = Staff.id.in_(bindparam("people", expanding=True))
    return select(Staff.id, Staff.email).where(people, Staff.active)


@cache
def _emails() -> Select[str]:
    return select(Staff.email).where(Staff.id.in_(bindparam("people", expanding=True)))


def _member(staff: Staff, acting_for: str | None = None) -> StaffMember:
    return StaffMember(
        id=staff.id,
        name=staff.name,
        role=staff.role,
        approval_limit=staff.approval_limit,
        acting_for=acting_for,
    )
