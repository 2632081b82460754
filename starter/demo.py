"""Demo data for a fresh embedded install: customers, orders and staff with dev tokens.

Seeded once (a database with staff already is left alone). Tokens are written to
``var/dev-tokens.json`` (readable by the owner only) so each ``make run`` can show them.
More orders: ``python -m starter orders add`` (``add_order`` here, which the seed uses too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, select

from activities.staff import StaffDirectory
from infra.db import Customer, Database, Order, OrderLine, Staff, Stock
from workflows.models import Identifier, PositiveMoney, StaffMember

STAFF = (
    ("agent-amy", "Amy Agent", "agent", "0"),
    ("backend-svc", "Order backend", "backend", "0"),
    ("warehouse-wes", "Wes Warehouse", "warehouse", "0"),
    ("qa-quinn", "Quinn Quality", "qa", "0"),
    ("acct-ana", "Ana Accounting", "accounting", "0"),
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
    demo_lines = {
        "ORD-1001": (
            OrderLineSpec("BISON-RIBEYE", 4, Decimal("150.00"), "Bison ribeye"),
            OrderLineSpec("ELK-BURGER", 10, Decimal("60.00"), "Elk burgers"),
        ),
        "ORD-1003": (OrderLineSpec("ELK-JERKY", 5, Decimal("17.90"), "Elk jerky"),),
        "ORD-1004": (
            OrderLineSpec("BISON-RIBEYE", 2, Decimal("150.00"), "Bison ribeye"),
            OrderLineSpec("ELK-BURGER", 4, Decimal("60.00"), "Elk burgers"),
        ),
        "ORD-2001": (OrderLineSpec("WAGYU-STRIP", 3, Decimal("300.00"), "Wagyu strip"),),
    }
    orders = (
        ("ORD-1001", "C-100", "delivered", "1200.00", 5, "active"),
        ("ORD-1002", "C-100", "shipped", "300.00", None, "active"),
        ("ORD-1003", "C-200", "processing", "89.50", None, "active"),
        ("ORD-1004", "C-100", "processing", "540.00", None, "active"),
        ("ORD-2001", "C-200", "delivered", "900.00", 45, "closed"),
    )
    for order_id, customer, status, total, delivered_days_ago, account in orders:
        add_order(
            db,
            order_id=order_id,
            customer_id=customer,
            total=Decimal(total),
            lines=demo_lines.get(order_id, ()),
            status=status,
            delivered_days_ago=delivered_days_ago,
            placed_days_ago=60,
            payment_account=account,
            now=now,
        )
    # What the warehouse holds, for rush orders: wagyu is out until next week.
    with db.transaction() as session:
        session.add_all(
            [
                Stock(sku="BISON-RIBEYE", on_hand=40, restock_on=None),
                Stock(sku="ELK-BURGER", on_hand=100, restock_on=None),
                Stock(sku="ELK-JERKY", on_hand=20, restock_on=None),
                Stock(sku="WAGYU-STRIP", on_hand=0, restock_on=(now + timedelta(days=7)).date()),
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


@dataclass(frozen=True)
class OrderLineSpec:
    sku: str
    quantity: int
    unit_price: Decimal
    description: str = ""


ORDER_STATUSES = ("processing", "shipped", "delivered", "cancelled")
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
_AMOUNT: TypeAdapter[Decimal] = TypeAdapter(PositiveMoney)


def add_order(
    db: Database,
    *,
    order_id: str,
    customer_id: str,
    total: Decimal | None = None,
    lines: Sequence[OrderLineSpec] = (),
    status: str = "delivered",
    delivered_days_ago: int | None = 3,
    placed_days_ago: int | None = None,
    payment_account: str = "active",
    now: datetime | None = None,
) -> Decimal:
    """Add an order of an existing customer; its total defaults to its lines' sum.

    Raises ValueError with a sentence for the user (unknown customer, taken id...)."""
    try:
        _IDENTIFIER.validate_python(order_id)
        for line in lines:
            _IDENTIFIER.validate_python(line.sku)
            _AMOUNT.validate_python(line.unit_price)
        lines_total = sum((line.unit_price * line.quantity for line in lines), Decimal("0"))
        total = _AMOUNT.validate_python(lines_total if total is None else total)
    except ValidationError as err:
        raise ValueError(err.errors()[0]["msg"]) from None
    if any(line.quantity < 1 for line in lines):
        raise ValueError("a line's quantity must be at least 1")
    if total < lines_total:
        raise ValueError(f"the total {total} is less than its lines ({lines_total})")
    if status not in ORDER_STATUSES:
        raise ValueError(f"status must be one of {', '.join(ORDER_STATUSES)}")
    now = now or datetime.now(UTC)
    delivered_at = None
    if status == "delivered":
        delivered_at = now - timedelta(days=delivered_days_ago or 0)
    if placed_days_ago is None:
        placed_days_ago = (delivered_days_ago or 0) + 4 if status == "delivered" else 1
    with db.transaction() as session:
        if session.get(Customer, customer_id) is None:
            raise ValueError(f"no customer {customer_id}")
        if session.get(Order, order_id) is not None:
            raise ValueError(f"order {order_id} already exists")
        session.add(
            Order(
                id=order_id,
                customer_id=customer_id,
                status=status,
                total=total,
                refunded=Decimal("0"),
                placed_at=now - timedelta(days=placed_days_ago),
                delivered_at=delivered_at,
                payment_account=payment_account,
            )
        )
        session.flush()
        session.add_all(
            OrderLine(
                order_id=order_id,
                sku=line.sku,
                description=line.description or line.sku.replace("-", " ").capitalize(),
                quantity=line.quantity,
                unit_price=line.unit_price,
            )
            for line in lines
        )
    return total


# What each role may do, as the API and the cases check it (docs/api.md, Roles).
ROLE_DUTIES = {
    "agent": "reads cases, sends customer events",
    "backend": "opens cases, sends customer events",
    "warehouse": "receives and inspects returns",
    "qa": "reports quality findings",
    "accounting": "answers billing escalations",
}


def role_duties(role: str, approval_limit: Decimal, currency: str) -> str:
    if role in ("supervisor", "manager"):
        return f"decides approvals up to {approval_limit:.2f} {currency}"
    return ROLE_DUTIES.get(role, "reads cases")


def demo_staff(db: Database) -> list[StaffMember]:
    """Everyone in the directory, by role and id, for the banner."""
    with db.transaction() as session:
        rows = session.scalars(select(Staff).order_by(Staff.role, Staff.id)).all()
        return [
            StaffMember(id=r.id, name=r.name, role=r.role, approval_limit=r.approval_limit)
            for r in rows
        ]


def _read_tokens(tokens_file: Path) -> dict[str, str]:
    if not tokens_file.exists():
        return {}
    tokens: dict[str, str] = json.loads(tokens_file.read_text())
    return tokens
