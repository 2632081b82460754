"""rush orders: stock, the priority flag on orders, charges on orders (rush fees, order
changes), shipments and carrier requests

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 02:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "stock",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("restock_on", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("sku"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority_case_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("promised_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("priority_flagged_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "order_charges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=250), nullable=False),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("charged_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("order_charges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_charges_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_order_charges_order_id"), ["order_id"], unique=False)
    op.create_table(
        "shipments",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_table(
        "carrier_requests",
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("carrier_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_carrier_requests_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("carrier_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_carrier_requests_case_id"))
    op.drop_table("carrier_requests")
    op.drop_table("shipments")
    with op.batch_alter_table("order_charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_charges_order_id"))
        batch_op.drop_index(batch_op.f("ix_order_charges_case_id"))
    op.drop_table("order_charges")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("priority_flagged_at")
        batch_op.drop_column("promised_on")
        batch_op.drop_column("priority_case_id")
    op.drop_table("stock")
