"""Writing a case's audit lines: once each, whoever writes them, and the case moves with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from activities import audit
from activities.cases import CaseActivities
from infra.db import Approval, AuditRecord, Case, SlaClock
from tests.activity_helpers import open_case
from tests.conftest import Shop
from tests.races import at_once
from workflows.models import ApprovalState, ApprovalStatus, AuditEntry, CaseStatus
from workflows.sla_models import Clock, ClockMark

CASE = "refund-lines"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def lines(*seqs: int) -> list[AuditEntry]:
    """Lines of the case (opened without any), each moving it a step."""
    at = datetime.now(UTC)
    return [
        AuditEntry(
            case_id=CASE,
            seq=seq,
            at=at + timedelta(seconds=seq),
            event=f"step_{seq}",
            actor="system",
            status=CaseStatus.VERIFYING,
            step=f"Step {seq}",
        )
        for seq in seqs
    ]


def trail(shop: Shop) -> list[tuple[int, str]]:
    with shop.db.read() as session:
        rows = session.execute(
            select(AuditRecord.seq, AuditRecord.event)
            .where(AuditRecord.case_id == CASE)
            .order_by(AuditRecord.seq)
        )
        return [(seq, event) for seq, event in rows]


def test_lines_written_again_are_not_written_twice_and_do_not_move_the_case_back(
    activities: CaseActivities, shop: Shop
) -> None:
    open_case(activities, CASE)
    with shop.db.transaction() as session:
        assert audit.write(session, lines(2, 3)) == {2, 3}
    with shop.db.transaction() as session:
        # A retry carries 3 again, with the next line: only 4 is new, and moves the case.
        assert audit.write(session, lines(4, 3)) == {4}
    with shop.db.transaction() as session:
        # Everything written before: nothing is new, and the case stays at its last step.
        assert audit.write(session, lines(2)) == set()

    assert [seq for seq, _ in trail(shop)] == [2, 3, 4]
    with shop.db.read() as session:
        case = session.get(Case, CASE)
        assert case is not None and case.step == "Step 4"


def test_two_attempts_writing_the_same_lines_at_once_write_each_line_once(
    activities: CaseActivities, shop: Shop
) -> None:
    open_case(activities, CASE)

    def attempt() -> set[int]:
        with shop.db.transaction() as session:
            return audit.write(session, lines(2, 3, 4))

    results = at_once([attempt for _ in range(4)])

    # No attempt fails on the unique (case, seq): each line is written by exactly one.
    assert all(isinstance(result, set) for result in results), results
    written = [seq for result in results if isinstance(result, set) for seq in sorted(result)]
    assert sorted(written) == [2, 3, 4]
    assert trail(shop) == [(2, "step_2"), (3, "step_3"), (4, "step_4")]


AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def mark(**instants: datetime) -> ClockMark:
    """The case's approval expiry clock, with the instants given."""
    return ClockMark(
        key=f"{CASE}/approval_expiry/1",
        case_id=CASE,
        procedure="refund",
        clock=Clock.APPROVAL_EXPIRY,
        owner="manager",
        budget_seconds=3 * 8 * 3600,
        started_at=AT,
        warn_at=AT + timedelta(days=2),
        due_at=AT + timedelta(days=3),
        **instants,
    )


def line(seq: int, **fields: object) -> AuditEntry:
    return AuditEntry.model_validate(
        {
            "case_id": CASE,
            "seq": seq,
            "at": AT + timedelta(minutes=seq),
            "event": "e",
            "actor": "system",
            **fields,
        }
    )


def approval(status: ApprovalStatus, decided_by: str | None = None) -> ApprovalState:
    return ApprovalState(
        status=status,
        amount=Decimal("750.00"),
        reason="broken on arrival",
        requested_by="agent-amy",
        requested_at=AT,
        remind_at=AT + timedelta(hours=4),
        escalate_at=AT + timedelta(hours=8),
        due_at=AT + timedelta(days=3),
        eligible_approvers=("mgr-mia",),
        decided_by=decided_by,
        decided_at=AT + timedelta(hours=1) if decided_by else None,
    )


def test_marks_of_one_clock_written_together_keep_each_instant_as_first_known(
    activities: CaseActivities, shop: Shop
) -> None:
    open_case(activities, CASE)
    warned, stopped = AT + timedelta(days=2), AT + timedelta(days=2, hours=1)
    with shop.db.transaction() as session:
        # Started, warned and stopped between two lines: three marks of one clock in one write.
        audit.write(
            session,
            [
                line(2, clocks=[mark(), mark(warned_at=warned)]),
                line(3, clocks=[mark(stopped_at=stopped)]),
            ],
        )
    with shop.db.transaction() as session:
        # A mark written again later, with another warning instant, changes nothing.
        audit.write(session, [line(4, clocks=[mark(warned_at=warned + timedelta(hours=5))])])

    with shop.db.read() as session:
        rows = session.scalars(select(SlaClock).where(SlaClock.case_id == CASE)).all()
    assert [
        (row.key, row.warn_at, row.warned_at, row.stopped_at, row.breached_at) for row in rows
    ] == [(f"{CASE}/approval_expiry/1", AT + timedelta(days=2), warned, stopped, None)]


def test_the_approval_stands_as_the_last_new_line_left_it(
    activities: CaseActivities, shop: Shop
) -> None:
    open_case(activities, CASE)
    pending = approval(ApprovalStatus.PENDING)
    approved = approval(ApprovalStatus.APPROVED, decided_by="mgr-mia")
    with shop.db.transaction() as session:
        audit.write(session, [line(3, approval=approved), line(2, approval=pending)])
    with shop.db.transaction() as session:
        # The request's line carried again (a retry): written before, it moves nothing back.
        assert audit.write(session, [line(2, approval=pending)]) == set()

    with shop.db.read() as session:
        row = session.get(Approval, CASE)
        assert row is not None
        assert (row.status, row.decided_by) == ("approved", "mgr-mia")
        assert (row.amount, row.eligible_approvers) == (Decimal("750.00"), ["mgr-mia"])
        case = session.get(Case, CASE)
        # Lines older than the case (AT is days back) never move its updated_at back.
        assert case is not None and case.updated_at == case.opened_at
