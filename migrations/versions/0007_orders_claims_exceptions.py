"""order notes and changes, carrier freight claims, a shipping address on orders, catalog
prices in stock, commercial customers, and what an approval asks (an authorization or an
exception to a named rule)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 03:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("stock", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unit_price", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("commercial", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shipping_address", sa.Text(), nullable=True))
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=30), nullable=False, server_default="authorization")
        )
        batch_op.add_column(sa.Column("rule", sa.String(length=64), nullable=True))
    op.create_table(
        "order_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "kind"),
    )
    with op.batch_alter_table("order_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_notes_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_order_notes_order_id"), ["order_id"], unique=False)
    op.create_table(
        "order_changes",
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("difference", sa.BigInteger(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )
    with op.batch_alter_table("order_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_changes_order_id"), ["order_id"], unique=False)
    op.create_table(
        "carrier_claims",
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("settled_amount", sa.BigInteger(), nullable=True),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("carrier_claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_carrier_claims_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("carrier_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_carrier_claims_case_id"))
    op.drop_table("carrier_claims")
    with op.batch_alter_table("order_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_changes_order_id"))
    op.drop_table("order_changes")
    with op.batch_alter_table("order_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_notes_order_id"))
        batch_op.drop_index(batch_op.f("ix_order_notes_case_id"))
    op.drop_table("order_notes")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_column("rule")
        batch_op.drop_column("kind")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("shipping_address")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("commercial")
    with op.batch_alter_table("stock", schema=None) as batch_op:
        batch_op.drop_column("unit_price")
