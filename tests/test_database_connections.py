"""Connections the database server drops: one failed attempt, then a fresh connection.

The worker does not ping a pooled connection before each use (a round trip per
transaction); a connection the server closed fails its first statement instead, and the
retry that every activity gets finds a fresh one. PostgreSQL only: SQLite has no server.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from infra.db import Database, Order

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def drop_every_connection_of(db: Database, admin_url: str) -> int:
    """Terminate the server side of every connection to ``db``'s database, as a restart does."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            dropped = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": db.engine.url.database},
            ).scalar_one()
    finally:
        admin.dispose()
    return int(dropped)


def test_a_dropped_connection_fails_one_attempt_and_the_retry_succeeds(
    db: Database, database_url: str
) -> None:
    with db.read() as session:
        assert session.get(Order, "ORD-NONE") is None  # a pooled connection now exists
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    assert drop_every_connection_of(db, admin_url) >= 1

    with pytest.raises(OperationalError), db.read() as session:
        session.get(Order, "ORD-NONE")

    with db.read() as session:  # what the activity's retry does
        assert session.get(Order, "ORD-NONE") is None
