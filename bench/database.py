"""The bench's own database: fresh for every run, seeded with what the refunds need.

SQLite: a file in the run's temporary folder. PostgreSQL: a database ``casework_bench_<hex>``
created on the server named by ``--database-url`` and dropped afterwards; the URL's own
database is only where the bench connects to create and drop it (``postgres`` when none).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

import migrations
from activities.staff import StaffDirectory
from infra.db import Customer, Database, Order


def backend_name(server_url: str | None) -> str:
    """``sqlite`` (the default) or ``postgresql``: the name the results are filed under."""
    if server_url is None:
        return "sqlite"
    backend = make_url(server_url).get_backend_name()
    if backend != "postgresql":
        raise ValueError(
            f"--database-url takes a PostgreSQL server (got {backend!r}); leave it out for SQLite"
        )
    return backend


@contextmanager
def fresh_database(server_url: str | None, workdir: Path, cases: int) -> Iterator[str]:
    """The URL of a new, migrated and seeded database, removed when the block ends."""
    if server_url is None:
        url = f"sqlite:///{workdir / 'cases.db'}"
        seed(url, cases)
        yield url
        return
    backend_name(server_url)
    server = make_url(server_url)
    admin = sa.create_engine(
        server.set(database=server.database or "postgres"), isolation_level="AUTOCOMMIT"
    )
    name = f"casework_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        seed(url, cases)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(database_url: str, cases: int) -> None:
    """One customer, one delivered order of 1000.00 per case, an agent and a manager."""
    migrations.upgrade(database_url)
    db = Database(database_url)
    with db.transaction() as session:
        session.add(Customer(id="C-BENCH", name="Bench", email="bench@example.com", vip=False))
        session.flush()
        now = datetime.now(UTC)
        for i in range(cases):
            session.add(
                Order(
                    id=order_id(i),
                    customer_id="C-BENCH",
                    status="delivered",
                    total=Decimal("1000.00"),
                    placed_at=now,
                    delivered_at=now,
                )
            )
    staff = StaffDirectory(db)
    staff.add(staff_id="agent-bench", name="Agent", email="agent@example.com", role="agent")
    staff.add(
        staff_id="mgr-bench",
        name="Manager",
        email="manager@example.com",
        role="manager",
        approval_limit=Decimal("5000.00"),
    )
    db.dispose()


def order_id(i: int) -> str:
    return f"ORD-B-{i:05d}"
