"""decision codes: single-use proofs for decisions sent by signal

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "decision_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("staff_id", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by_event", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "staff_id", "code_hash"),
    )
    with op.batch_alter_table("decision_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decision_codes_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("decision_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_codes_case_id"))
    op.drop_table("decision_codes")
