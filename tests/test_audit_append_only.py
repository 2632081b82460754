"""The audit trail is append-only in the database: an UPDATE or a DELETE of its rows is
refused by a trigger, on SQLite and on PostgreSQL, whether the schema was built by the
migrations (every real database) or by ``Base.metadata.create_all``."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError

import migrations
from infra import append_only
from infra.db import AuditRecord, Base, Case, Database

ON_BOTH_DATABASES = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
CASE = "refund-audit-1"


@pytest.fixture(params=["migrations", "create_all"])
def audited(request: pytest.FixtureRequest, database_url: str) -> Iterator[Database]:
    """A database whose schema was built one way or the other, with one case and its first
    audit line."""
    if request.param == "create_all":
        command.downgrade(migrations.alembic_config(database_url), "base")
        engine = sa.create_engine(database_url)
        Base.metadata.create_all(engine)
        engine.dispose()
    db = Database(database_url)
    open_case(db)
    yield db
    db.dispose()


def open_case(db: Database) -> None:
    """The case and its first line, as a case writes them when it opens."""
    with db.transaction() as session:
        session.add(
            Case(
                id=CASE,
                type="refund",
                status="received",
                step="Received",
                order_id="ORD-1001",
                customer_id="C-100",
                amount=None,
                requested_by="agent-amy",
                request={},
                rules={},
                opened_at=NOW,
                updated_at=NOW,
            )
        )
        session.flush()  # the case before its line (the foreign key)
        session.add(line(1, "case_opened"))


def line(seq: int, event: str) -> AuditRecord:
    return AuditRecord(case_id=CASE, seq=seq, at=NOW, event=event, actor="agent-amy", detail={})


def rows(db: Database) -> list[tuple[int, str, str]]:
    with db.read() as session:
        found = session.execute(
            sa.select(AuditRecord.seq, AuditRecord.event, AuditRecord.actor).order_by(
                AuditRecord.seq
            )
        )
        return [(seq, event, actor) for seq, event, actor in found]


ORIGINAL = [(1, "case_opened", "agent-amy")]


@ON_BOTH_DATABASES
def test_an_audit_line_cannot_be_changed(audited: Database) -> None:
    with pytest.raises(IntegrityError, match="append-only"), audited.transaction() as session:
        record = session.scalars(sa.select(AuditRecord)).one()
        record.actor = "someone-else"
    with pytest.raises(IntegrityError, match="append-only"), audited.transaction() as session:
        session.execute(sa.text("UPDATE audit_trail SET event = 'case_rewritten'"))
    assert rows(audited) == ORIGINAL


@ON_BOTH_DATABASES
def test_an_audit_line_cannot_be_deleted(audited: Database) -> None:
    with pytest.raises(IntegrityError, match="append-only"), audited.transaction() as session:
        session.delete(session.scalars(sa.select(AuditRecord)).one())
    with pytest.raises(IntegrityError, match="append-only"), audited.transaction() as session:
        session.execute(sa.text("DELETE FROM audit_trail"))
    assert rows(audited) == ORIGINAL


@ON_BOTH_DATABASES
def test_lines_are_still_appended_and_the_case_still_moves(audited: Database) -> None:
    with audited.transaction() as session:
        session.add(line(2, "verifying"))
        case = session.get(Case, CASE)
        assert case is not None
        case.status = "verifying"
    assert rows(audited) == [*ORIGINAL, (2, "verifying", "agent-amy")]


# SQLite has no TRUNCATE: its DELETE without WHERE is refused above.
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_refuses_truncating_the_trail(audited: Database) -> None:
    with pytest.raises(IntegrityError, match="append-only"), audited.transaction() as session:
        session.execute(sa.text("TRUNCATE audit_trail"))
    assert rows(audited) == ORIGINAL


@ON_BOTH_DATABASES
def test_downgrading_below_0009_lifts_the_rule_and_upgrading_restores_it(
    database_url: str,
) -> None:
    config = migrations.alembic_config(database_url)
    db = Database(database_url)
    try:
        open_case(db)
        command.downgrade(config, "0008")
        with db.transaction() as session:
            session.execute(sa.text("UPDATE audit_trail SET actor = 'system'"))
        migrations.upgrade(database_url)
        with pytest.raises(IntegrityError, match="append-only"), db.transaction() as session:
            session.execute(sa.text("UPDATE audit_trail SET actor = 'agent-amy'"))
        assert rows(db) == [(1, "case_opened", "system")]
    finally:
        db.dispose()


def test_the_migration_creates_the_triggers_the_models_declare() -> None:
    # Changing the triggers in infra/append_only.py takes a migration that changes them too.
    migration = importlib.import_module("migrations.versions.0009_audit_append_only")

    def words(statements: tuple[str, ...]) -> list[str]:
        return [" ".join(statement.split()) for statement in statements]

    declared = append_only.ddl("audit_trail")
    assert set(migration.CREATE) == set(declared) == {"postgresql", "sqlite"}
    for dialect, statements in declared.items():
        assert words(migration.CREATE[dialect]) == words(statements), dialect
