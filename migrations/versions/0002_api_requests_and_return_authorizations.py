"""api requests and return authorizations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:58:23.962770
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:

    op.create_table(
        "api_requests",
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "return_authorizations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ra_number", sa.String(length=32), nullable=True),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id"),
        sa.UniqueConstraint("ra_number"),
    )
    with op.batch_alter_table("return_authorizations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_return_authorizations_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_return_authorizations_order_id"), ["order_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("return_authorizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_return_authorizations_order_id"))
        batch_op.drop_index(batch_op.f("ix_return_authorizations_customer_id"))

    op.drop_table("return_authorizations")
    op.drop_table("api_requests")
