"""Shared fixtures: real Temporal servers, real databases, the real worker.

- ``env``: the time-skipping test server (timers of days pass in milliseconds).
- ``database_url``: a fresh, migrated database per test; SQLite, or PostgreSQL for tests
  marked to run on both (``backend`` parameter).
- ``shop``: customers, orders and staff every specification talks about.
- ``worker``: the production worker over that database on its own task queue.

The whole suite runs encrypted, as production does: every client is built on the production
``DATA_CONVERTER``, whose keys come from CODEC_KEYS, set here to one random key per session
(nothing kept depends on it: recorded histories are stored decrypted).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import migrations
from activities.cases import CaseActivities
from activities.lots import lot_watch_id
from activities.staff import StaffDirectory
from infra.codec import new_key
from infra.db import Customer, Database, Order, OrderLine, Shipment, Stock
from settings import Settings
from starter import DATA_CONVERTER, StartedCase, ensure_search_attributes, start_refund
from starter.api import create_app
from worker import build_activities, build_worker
from workflows import visibility
from workflows.models import RefundRequest

os.environ.setdefault("CODEC_KEYS", f"test-1:{new_key()}")

BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# ---- Temporal ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=DATA_CONVERTER,
    ) as environment:
        await ensure_search_attributes(environment.client)
        yield environment


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (visibility, search attributes), for end-to-end tests."""
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=DATA_CONVERTER,
        search_attributes=list(visibility.ALL_KEYS),
        ui=False,
    ) as environment:
        yield environment


# ---- databases -------------------------------------------------------------------------------


def _postgres_reachable(url: str) -> bool:
    try:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


def require_postgres(url: str, environ: Mapping[str, str]) -> None:
    """Go on when PostgreSQL answers at ``url``; otherwise skip, or fail under ``CI``.

    A developer without a local server still runs the SQLite half; a CI run must never turn
    green with the PostgreSQL half silently skipped.
    """
    if _postgres_reachable(url):
        return
    why = f"no PostgreSQL reachable at {url}"
    if environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"{why}, and CI={environ['CI']} requires every backend to be tested")
    pytest.skip(why)


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Overridden to ["sqlite", "postgresql"] by tests that must pass on both."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'cases.db'}"
        migrations.upgrade(url)
        yield url
        return
    require_postgres(PG_ADMIN_URL, os.environ)
    name = f"casework_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrations.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


# ---- the shop every specification talks about ------------------------------------------------


@dataclass
class Shop:
    db: Database
    tokens: dict[str, str] = field(default_factory=dict)

    def add_order(
        self,
        order_id: str,
        total: str,
        *,
        customer_id: str = "C-100",
        status: str = "delivered",
        delivered_days_ago: int = 3,
        payment_account: str = "active",
        lines: tuple[tuple[str, int, str], ...] = (),
    ) -> None:
        now = datetime.now(UTC)
        with self.db.transaction() as session:
            session.add(
                Order(
                    id=order_id,
                    customer_id=customer_id,
                    status=status,
                    total=Decimal(total),
                    refunded=Decimal("0"),
                    placed_at=now - timedelta(days=delivered_days_ago + 4),
                    delivered_at=(
                        now - timedelta(days=delivered_days_ago) if status == "delivered" else None
                    ),
                    payment_account=payment_account,
                )
            )
            for sku, quantity, unit_price in lines:
                session.add(
                    OrderLine(
                        order_id=order_id,
                        sku=sku,
                        description=sku,
                        quantity=quantity,
                        unit_price=Decimal(unit_price),
                    )
                )

    def set_stock(self, sku: str, on_hand: int, restock_on: date | None = None) -> None:
        """What the warehouse holds of ``sku`` (replacing what it held)."""
        with self.db.transaction() as session:
            session.merge(Stock(sku=sku, on_hand=on_hand, restock_on=restock_on))

    def set_shipment(
        self,
        order_id: str,
        state: str,
        *,
        tracking_number: str | None = "1Z999",
        attempts: int = 0,
        delivered_at: datetime | None = None,
    ) -> None:
        """What the carrier says of the order's parcel (replacing what it said)."""
        with self.db.transaction() as session:
            session.merge(
                Shipment(
                    order_id=order_id,
                    tracking_number=tracking_number,
                    state=state,
                    attempts=attempts,
                    delivered_at=delivered_at,
                    updated_at=datetime.now(UTC),
                )
            )

    def auth(self, staff_id: str) -> dict[str, str]:
        """The HTTP headers that sign in as ``staff_id`` (a staff member of the shop)."""
        return {"Authorization": f"Bearer {self.tokens[staff_id]}"}


@pytest.fixture
def shop(db: Database) -> Shop:
    """Customers C-100 (Ada) and C-200 (VIP Grace); orders; agents, warehouse, approvers."""
    shop = Shop(db)
    with db.transaction() as session:
        session.add(
            Customer(
                id="C-100",
                name="Ada Lovelace",
                email="ada@example.com",
                phone="+1 512 555 0100",
                address="1 Main St",
                vip=False,
            )
        )
        session.add(
            Customer(
                id="C-200",
                name="Grace Hopper",
                email="grace@example.com",
                phone="+1 512 555 0200",
                address="2 Main St",
                vip=True,
            )
        )
    shop.add_order("ORD-1001", "1200.00")
    shop.add_order("ORD-1002", "300.00")
    shop.add_order("ORD-2001", "900.00", customer_id="C-200", payment_account="closed")
    staff = StaffDirectory(db)
    for staff_id, role, limit in (
        ("agent-amy", "agent", "0"),
        ("backend", "backend", "0"),
        ("warehouse-wes", "warehouse", "0"),
        ("sup-sam", "supervisor", "1000.00"),
        ("mgr-mia", "manager", "5000.00"),
        ("mgr-max", "manager", "5000.00"),
        ("sup-low", "supervisor", "600.00"),
        ("qa-quinn", "qa", "0"),
        ("acct-ana", "accounting", "0"),
    ):
        shop.tokens[staff_id] = staff.add(
            staff_id=staff_id,
            name=staff_id,
            email=f"{staff_id}@exoticmeats.com",
            role=role,
            approval_limit=Decimal(limit),
        )
    return shop


# ---- the worker ----------------------------------------------------------------------------


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    """The worker's settings; a test parametrized indirectly (``indirect=["settings"]``) with
    a dict of overrides runs its worker, and so its cases' rules, under those."""
    overrides: dict[str, Any] = getattr(request, "param", None) or {}
    return Settings(
        database_url=database_url, task_queue=f"test-{uuid.uuid4().hex[:8]}", **overrides
    )


@pytest.fixture
def activities(shop: Shop, settings: Settings) -> CaseActivities:
    return build_activities(shop.db, settings)


@pytest.fixture
async def worker(
    env: WorkflowEnvironment, activities: CaseActivities, settings: Settings
) -> AsyncIterator[Worker]:
    async with build_worker(env.client, activities=activities, settings=settings) as running:
        yield running


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    return env.client


# ---- starting cases in a test --------------------------------------------------------------


@dataclass
class Cases:
    """Starts cases on the test's task queue and terminates what is left when it ends.

    A case left waiting on a stopped worker would hold the time-skipping server's clock
    for every later test, so none may outlive its test.
    """

    client: Client
    task_queue: str
    handles: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    async def start(
        self, start: Callable[..., Awaitable[StartedCase]], request: Any
    ) -> WorkflowHandle[Any, Any]:
        started = await start(self.client, request, task_queue=self.task_queue)
        # The handle from the start call lets the time-skipping server skip while awaited.
        self.handles.append(started.handle)
        lot = getattr(request, "lot", None)
        if isinstance(lot, str):
            self.watch(lot)
        return started.handle

    def watch(self, lot: str) -> None:
        """A complaint's lot watch outlives its case: it is terminated with the test's cases."""
        self.handles.append(self.client.get_workflow_handle(lot_watch_id(lot)))

    async def refund(self, request: RefundRequest) -> WorkflowHandle[Any, Any]:
        return await self.start(start_refund, request)

    async def close_all(self) -> None:
        for handle in self.handles:
            try:
                description = await handle.describe()
            except RPCError as err:
                if err.status is RPCStatusCode.NOT_FOUND:  # a lot watch never started
                    continue
                raise
            if description.status is WorkflowExecutionStatus.RUNNING:
                await _settled(handle)
                try:
                    await handle.terminate(reason="test finished")
                except RPCError as err:
                    if err.status is not RPCStatusCode.NOT_FOUND:  # else it closed meanwhile
                        raise


_CLOSES_WORKFLOW_TASK = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}
_CLOSES_ACTIVITY = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


async def _settled(handle: WorkflowHandle[Any, Any], seconds: float = 5.0) -> None:
    """Wait (a while) until no workflow task or activity of the case is in flight.

    The time-skipping server holds its clock while a task it handed out is outstanding, and a
    task whose workflow was terminated meanwhile is never completed: terminating mid-task
    would freeze time for every later test.
    """
    for _ in range(int(seconds / 0.02)):
        workflow_task_open = False
        activities_open: set[int] = set()
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                workflow_task_open = True
            elif event.event_type in _CLOSES_WORKFLOW_TASK:
                workflow_task_open = False
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                activities_open.add(event.event_id)
            elif event.event_type in _CLOSES_ACTIVITY:
                closed = getattr(event, _CLOSES_ACTIVITY[event.event_type])
                activities_open.discard(closed.scheduled_event_id)
        if not workflow_task_open and not activities_open:
            return
        await asyncio.sleep(0.02)


@pytest.fixture
async def cases(client: Client, worker: Worker, settings: Settings) -> AsyncIterator[Cases]:
    tracker = Cases(client, settings.task_queue)
    yield tracker
    await tracker.close_all()


@pytest.fixture
async def http(
    client: Client, cases: Cases, settings: Settings, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API over the test's worker and database (``shop.auth`` signs requests in)."""
    app = create_app(client, database_url=database_url, settings=settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://casework.test", timeout=30
    ) as api:
        yield api
