"""The audit trail is append-only: triggers refuse UPDATE and DELETE of its rows

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 05:20:00

The statements are a frozen copy of ``infra.append_only.ddl("audit_trail")`` (a migration
must not change when the code does); tests/test_audit_append_only.py holds the two equal, so
changing the triggers takes a new migration.
"""

from __future__ import annotations

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

CREATE = {
    "postgresql": (
        """
        CREATE OR REPLACE FUNCTION audit_trail_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING
                ERRCODE = 'restrict_violation',
                MESSAGE = 'audit_trail is append-only: ' || TG_OP || ' refused';
        END
        $$
        """,
        """
        CREATE TRIGGER audit_trail_append_only
        BEFORE UPDATE OR DELETE ON audit_trail
        FOR EACH ROW EXECUTE FUNCTION audit_trail_append_only()
        """,
        """
        CREATE TRIGGER audit_trail_no_truncate
        BEFORE TRUNCATE ON audit_trail
        FOR EACH STATEMENT EXECUTE FUNCTION audit_trail_append_only()
        """,
    ),
    "sqlite": (
        """
        CREATE TRIGGER audit_trail_no_update BEFORE UPDATE ON audit_trail
        BEGIN SELECT RAISE(ABORT, 'audit_trail is append-only: UPDATE refused'); END
        """,
        """
        CREATE TRIGGER audit_trail_no_delete BEFORE DELETE ON audit_trail
        BEGIN SELECT RAISE(ABORT, 'audit_trail is append-only: DELETE refused'); END
        """,
    ),
}

DROP = {
    "postgresql": (
        "DROP TRIGGER IF EXISTS audit_trail_no_truncate ON audit_trail",
        "DROP TRIGGER IF EXISTS audit_trail_append_only ON audit_trail",
        "DROP FUNCTION IF EXISTS audit_trail_append_only()",
    ),
    "sqlite": (
        "DROP TRIGGER IF EXISTS audit_trail_no_delete",
        "DROP TRIGGER IF EXISTS audit_trail_no_update",
    ),
}


def upgrade() -> None:
    for statement in CREATE.get(op.get_bind().dialect.name, ()):
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP.get(op.get_bind().dialect.name, ()):
        op.execute(statement)
