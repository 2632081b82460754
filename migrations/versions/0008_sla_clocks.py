"""SLA clocks: every deadline of a case on business time, its warning and its breach

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 05:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("procedure", sa.String(length=20), nullable=False),
        sa.Column("clock", sa.String(length=40), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("budget_seconds", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("warn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.create_index("ix_sla_clocks_open", ["stopped_at", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sla_clocks_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sla_clocks_clock"), ["clock"], unique=False)
        batch_op.create_index(batch_op.f("ix_sla_clocks_procedure"), ["procedure"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_clocks_procedure"))
        batch_op.drop_index(batch_op.f("ix_sla_clocks_clock"))
        batch_op.drop_index(batch_op.f("ix_sla_clocks_case_id"))
        batch_op.drop_index("ix_sla_clocks_open")
    op.drop_table("sla_clocks")
