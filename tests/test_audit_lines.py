"""Writing a case's audit lines: once each, whoever writes them, and the case moves with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from activities import audit
from activities.cases import CaseActivities
from infra.db import AuditRecord, Case
from tests.activity_helpers import open_case
from tests.conftest import Shop
from tests.races import at_once
from workflows.models import AuditEntry, CaseStatus

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
