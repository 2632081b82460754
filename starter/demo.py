"""Demo data for a fresh embedded install: customers, orders and staff with dev tokens.

Seeded once (a database with staff already is left alone). Tokens are written to
``var/dev-tokens.json`` (readable by the owner only) so each ``make run`` can show them.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from activities.db import Customer, Database, Order, OrderLine, Staff
from activities.staff import StaffDirectory

STAFF = (
    ("agent-amy", "Amy Agent", "agent", "0"),
    ("backend-svc", "Order backend", "backend", "0"),
    ("warehouse-wes", "Wes Warehouse", "warehouse", "0"),
    ("sup-sam", "Sam Supervisor", "supervisor", "1000.00"),
    ("mgr-mia", "Mia Manager", "manager", "5000.00"),
)


def seed_demo(db: Database, tokens_file: Path) -> dict[str, str]:
    """Seed once; return the dev tokens (from ``tokens_file`` on later runs)."""
    with db.transaction() as session:
        seeded = session.scalar(select(func.count()).select_from(Staff)) or 0
    if seeded:
        return _read_tokens(tokens_file)
    now = datetime.now(UTC)
    with db.transaction() as session:
        session.add_all(
            [
                Customer(
                    id="C-100",
                    name="Ada Lovelace",
                    email="ada@example.com",
                    phone="+1 512 555 0100",
                    address="1 Analytical Way, Austin TX",
                ),
                Customer(
                    id="C-200",
                    name="Grace Hopper",
                    email="grace@example.com",
                    phone="+1 512 555 0200",
                    address="2 Compiler Ct, Austin TX",
                    vip=True,
                ),
            ]
        )
        orders = (
            ("ORD-1001", "C-100", "delivered", "1200.00", 5, "active"),
            ("ORD-1002", "C-100", "shipped", "300.00", None, "active"),
            ("ORD-1003", "C-200", "processing", "89.50", None, "active"),
            ("ORD-2001", "C-200", "delivered", "900.00", 45, "closed"),
        )
        for order_id, customer, status, total, delivered_days_ago, account in orders:
            delivered = (
                now - timedelta(days=delivered_days_ago) if delivered_days_ago is not None else None
            )
            session.add(
                Order(
                    id=order_id,
                    customer_id=customer,
                    status=status,
                    total=Decimal(total),
                    refunded=Decimal("0"),
                    placed_at=now - timedelta(days=60),
                    delivered_at=delivered,
                    payment_account=account,
                )
            )
        session.flush()
        session.add_all(
            [
                OrderLine(
                    order_id="ORD-1001",
                    sku="BISON-RIBEYE",
                    description="Bison ribeye",
                    quantity=4,
                    unit_price=Decimal("150.00"),
                ),
                OrderLine(
                    order_id="ORD-1001",
                    sku="ELK-BURGER",
                    description="Elk burgers",
                    quantity=10,
                    unit_price=Decimal("60.00"),
                ),
                OrderLine(
                    order_id="ORD-2001",
                    sku="WAGYU-STRIP",
                    description="Wagyu strip",
                    quantity=3,
                    unit_price=Decimal("300.00"),
                ),
            ]
        )
    directory = StaffDirectory(db)
    tokens = {
        staff_id: directory.add(
            staff_id=staff_id,
            name=name,
            email=f"{staff_id}@exoticmeats.com",
            role=role,
            approval_limit=Decimal(limit),
        )
        for staff_id, name, role, limit in STAFF
    }
    tokens_file.parent.mkdir(parents=True, exist_ok=True)
    tokens_file.write_text(json.dumps(tokens, indent=2))
    os.chmod(tokens_file, 0o600)
    return tokens


def _read_tokens(tokens_file: Path) -> dict[str, str]:
    if not tokens_file.exists():
        return {}
    tokens: dict[str, str] = json.loads(tokens_file.read_text())
    return tokens
