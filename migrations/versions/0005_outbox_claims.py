"""outbox claims: delivery attempts with a next-attempt time and a claim

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 20:10:00
"""

from __future__ import annotations

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
