"""Tables the database keeps append-only: triggers refuse any UPDATE or DELETE of their rows
(and, on PostgreSQL, a TRUNCATE), whoever sends it. Both databases report the refusal as an
integrity error (``sqlalchemy.exc.IntegrityError``), "<table> is append-only: UPDATE refused".

``install`` attaches the triggers to a table's creation by ``Base.metadata.create_all``; the
migration that introduced them (0009 for ``audit_trail``) keeps its own frozen copy of this
DDL. On SQLite a table rebuilt by a batch migration (a copy, then a rename) loses its
triggers: such a migration must create them again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event


def ddl(table: str) -> dict[str, tuple[str, ...]]:
    """The statements that make ``table`` append-only, per dialect."""
    return {
        "postgresql": (
            f"""
            CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION USING
                    ERRCODE = 'restrict_violation',
                    MESSAGE = '{table} is append-only: ' || TG_OP || ' refused';
            END
            $$
            """,
            f"""
            CREATE TRIGGER {table}_append_only
            BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_append_only()
            """,
            f"""
            CREATE TRIGGER {table}_no_truncate
            BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()
            """,
        ),
        "sqlite": (
            f"""
            CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END
            """,
            f"""
            CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END
            """,
        ),
    }


def install(table: Table) -> None:
    """Create the triggers whenever ``table`` is created from the models."""

    @event.listens_for(table, "after_create")
    def _append_only(target: Table, connection: Any, **_: Any) -> None:
        for statement in ddl(target.name).get(connection.dialect.name, ()):
            connection.exec_driver_sql(statement)
