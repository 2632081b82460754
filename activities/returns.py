"""Return authorizations: RA numbers minted by the database, once per case.

The row's autoincrement id numbers the RA, so two cases can never share one; the unique
``case_id`` turns a retried or re-run mint into a lookup of the first one. Items count as
returned while their RA is issued or received; an expired RA frees them again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from activities import audit as audit_trail
from infra.db import Database, ReturnAuthorization
from workflows import policy
from workflows.models import AuditEntry
from workflows.return_models import RaIssue, RaIssued, RaState, RaStatus

LIVE = (RaStatus.ISSUED.value, RaStatus.RECEIVED.value)


def ra_number(row_id: int, issued_at: datetime) -> str:
    return f"RA-{issued_at.year}-{row_id:06d}"


class ReturnAuthorizations:
    def __init__(self, db: Database) -> None:
        self._db = db

    def returned(self, order_id: str, *, except_case: str) -> dict[str, int]:
        """Quantities per sku of ``order_id`` under other cases' live RAs."""
        with self._db.transaction() as session:
            return _returned(session, order_id, except_case)

    def issue(
        self, request: RaIssue, ordered: dict[str, int], *, audit: Sequence[AuditEntry] = ()
    ) -> RaIssued:
        """Mint the case's RA, or return the one an earlier attempt minted; ``audit`` lines
        are written in the same transaction, minted or refused."""
        try:
            with self._db.transaction() as session:
                _serialize_per_order(session, request.order_id)
                audit_trail.write(session, audit)
                existing = _by_case(session, request.case_id)
                if existing is not None:
                    return RaIssued(ra=_state(existing))
                # Checked again here, serialized per order: two cases that passed the
                # eligibility check at the same time cannot both take the same items.
                returned = _returned(session, request.order_id, request.case_id)
                refusal = policy.unreturnable(request.items, ordered, returned)
                if refusal:
                    return RaIssued(refusal=refusal)
                row = ReturnAuthorization(
                    case_id=request.case_id,
                    order_id=request.order_id,
                    customer_id=request.customer_id,
                    items=[item.model_dump(mode="json") for item in request.items],
                    status=RaStatus.ISSUED.value,
                    issued_at=request.issued_at,
                    expires_at=request.expires_at,
                )
                session.add(row)
                session.flush()  # the database assigns the id the number is made of
                row.ra_number = ra_number(row.id, request.issued_at)
                return RaIssued(ra=_state(row))
        except IntegrityError:
            # A concurrent attempt for the same case won the unique case_id: use its RA.
            found = self.find(request.case_id)
            if found is None:
                raise
            with self._db.transaction() as session:  # rolled back with the losing mint
                audit_trail.write(session, audit)
            return RaIssued(ra=found)

    def find(self, case_id: str) -> RaState | None:
        with self._db.transaction() as session:
            row = _by_case(session, case_id)
            return None if row is None else _state(row)

    def case_id_for(self, number: str) -> str | None:
        """The case an RA number belongs to (what the warehouse scans)."""
        with self._db.transaction() as session:
            return session.scalar(
                select(ReturnAuthorization.case_id).where(
                    ReturnAuthorization.ra_number == number.strip().upper()
                )
            )

    def mark(
        self, case_id: str, status: RaStatus, at: datetime, *, audit: Sequence[AuditEntry] = ()
    ) -> RaState | None:
        """Move an issued RA to received or expired; a repeat changes nothing. ``audit``
        lines are written in the same transaction."""
        values: dict[str, object] = {"status": status.value}
        if status is RaStatus.RECEIVED:
            values["received_at"] = at
        with self._db.transaction() as session:
            audit_trail.write(session, audit)
            session.execute(
                update(ReturnAuthorization)
                .where(
                    ReturnAuthorization.case_id == case_id,
                    ReturnAuthorization.status == RaStatus.ISSUED.value,
                )
                .values(**values)
            )
            row = _by_case(session, case_id)
            return None if row is None else _state(row)


def _serialize_per_order(session: Session, order_id: str) -> None:
    # SQLite transactions here already start with BEGIN IMMEDIATE (one writer at a time);
    # PostgreSQL needs a lock, held to commit, so concurrent mints for one order queue up.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"ra:{order_id}"}
        )


def _by_case(session: Session, case_id: str) -> ReturnAuthorization | None:
    return session.scalar(select(ReturnAuthorization).where(ReturnAuthorization.case_id == case_id))


def _returned(session: Session, order_id: str, except_case: str) -> dict[str, int]:
    rows = session.scalars(
        select(ReturnAuthorization).where(
            ReturnAuthorization.order_id == order_id,
            ReturnAuthorization.case_id != except_case,
            ReturnAuthorization.status.in_(LIVE),
        )
    )
    counts: Counter[str] = Counter()
    for row in rows:
        for item in row.items:
            counts[str(item["sku"])] += int(item["quantity"])
    return dict(counts)


def _state(row: ReturnAuthorization) -> RaState:
    assert row.ra_number is not None, "an RA row is numbered in the transaction that adds it"
    return RaState(
        ra_number=row.ra_number,
        status=RaStatus(row.status),
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        received_at=row.received_at,
    )
