"""refund reservations: what is held on an order while a payment is in flight

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reserved", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_table(
        "refund_reservations",
        sa.Column("idempotency_key", sa.String(length=250), nullable=False),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )
    with op.batch_alter_table("refund_reservations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_refund_reservations_case_id"), ["case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_refund_reservations_order_id"), ["order_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_refund_reservations_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refund_reservations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refund_reservations_status"))
        batch_op.drop_index(batch_op.f("ix_refund_reservations_order_id"))
        batch_op.drop_index(batch_op.f("ix_refund_reservations_case_id"))
    op.drop_table("refund_reservations")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("reserved")
