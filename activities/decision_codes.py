"""Decision codes: the proof a decision sent by signal carries (see docs/approval-gate.md).

A signal names its sender in its own payload and the Temporal UI records no identity, so a
signal decision is believed only with a code that reached the approver by email. Codes are
random (60 bits), stored only as a hash bound to the case and the approver, valid for one
request until it expires, and spent by the first decision event that presents them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infra.db import Database, DecisionCode

# Crockford's base32: no I, L, O or U to misread when typed from an email.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def code_hash(case_id: str, staff_id: str, code: str) -> str:
    normalized = code.upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(f"{case_id}\n{staff_id}\n{normalized}".encode()).hexdigest()


@dataclass(frozen=True)
class IssuedCode:
    """What the store knows of a code, without spending it (the decision link's page)."""

    requested_at: datetime
    expires_at: datetime
    used_at: datetime | None


class DecisionCodes:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def issue(
        session: Session,
        *,
        case_id: str,
        staff_id: str,
        requested_at: datetime,
        expires_at: datetime,
        at: datetime,
    ) -> str:
        """A new code for ``staff_id`` on this request, in the caller's transaction."""
        code = new_code()
        session.add(
            DecisionCode(
                case_id=case_id,
                staff_id=staff_id,
                requested_at=requested_at,
                code_hash=code_hash(case_id, staff_id, code),
                issued_at=at,
                expires_at=expires_at,
            )
        )
        return code

    def look_up(self, *, case_id: str, staff_id: str, code: str) -> IssuedCode | None:
        """The code as issued to ``staff_id`` on this case (any request), or None."""
        with self._db.read() as session:
            row = session.scalar(
                select(DecisionCode)
                .where(
                    DecisionCode.case_id == case_id,
                    DecisionCode.staff_id == staff_id,
                    DecisionCode.code_hash == code_hash(case_id, staff_id, code),
                )
                .order_by(DecisionCode.issued_at.desc())
                .limit(1)
            )
            if row is None:
                return None
            return IssuedCode(row.requested_at, row.expires_at, row.used_at)

    def spend(
        self,
        *,
        case_id: str,
        staff_id: str,
        requested_at: datetime,
        code: str,
        event_id: str | None,
        at: datetime,
    ) -> bool:
        """True when ``code`` is this approver's for this request, unexpired and unspent (or
        spent by this same event: a retried check); it is spent from then on."""
        with self._db.transaction() as session:
            row = session.scalar(
                select(DecisionCode).where(
                    DecisionCode.case_id == case_id,
                    DecisionCode.staff_id == staff_id,
                    DecisionCode.requested_at == requested_at,
                    DecisionCode.code_hash == code_hash(case_id, staff_id, code),
                )
            )
            if row is None or at >= row.expires_at:
                return False
            if row.used_at is not None:
                return event_id is not None and row.used_by_event == event_id
            # Conditional, so that of two checks at the same instant only one spends it.
            spent = session.execute(
                update(DecisionCode)
                .where(DecisionCode.id == row.id, DecisionCode.used_at.is_(None))
                .values(used_at=at, used_by_event=event_id)
            )
            return bool(spent.rowcount == 1)  # type: ignore[attr-defined]
