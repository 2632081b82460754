"""The database: tables, column types and the one way to open a transaction.

SQLite (the embedded default) and PostgreSQL behave alike here: money is integer cents,
instants are UTC, and every idempotent write is guarded by a unique constraint.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from infra import append_only

CENT = Decimal("0.01")


class Cents(TypeDecorator[Decimal]):
    """A Decimal amount stored exactly as integer cents."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        cents = Decimal(value) * 100
        if cents != cents.to_integral_value():
            raise ValueError(f"{value} has fractions of a cent")
        return int(cents)

    def process_result_value(self, value: int | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else (Decimal(value) / 100).quantize(CENT)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC instants on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC instant is expected")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


# ---- the local order system --------------------------------------------------------------


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(Text)
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    # A commercial account: its price adjustments need a manager (Manager Authorization).
    commercial: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    # processing | shipped | delivered | cancelled
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[Decimal] = mapped_column(Cents)
    refunded: Mapped[Decimal] = mapped_column(Cents, default=Decimal("0"))
    # Held for payments in flight (see RefundReservation): refundable = total - refunded - reserved.
    reserved: Mapped[Decimal] = mapped_column(Cents, default=Decimal("0"), server_default="0")
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # "closed" when the card or account paid with can no longer receive money.
    payment_account: Mapped[str] = mapped_column(String(20), default="active")
    # Set once by the rush order case that expedites it: which case, and the date it promised.
    priority_case_id: Mapped[str | None] = mapped_column(String(200))
    promised_on: Mapped[date | None] = mapped_column(Date)
    priority_flagged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Where it ships when it differs from the customer's address (an order change sets it).
    shipping_address: Mapped[str | None] = mapped_column(Text)


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "sku"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Cents)


class Stock(Base):
    """Units on hand per sku; ``restock_on`` is the next delivery the warehouse expects."""

    __tablename__ = "stock"
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer)
    restock_on: Mapped[date | None] = mapped_column(Date)
    # The catalog price of one unit (an order change to another item is priced with it).
    unit_price: Mapped[Decimal | None] = mapped_column(Cents)


# ---- the local carrier -------------------------------------------------------------------


class Shipment(Base):
    """The carrier's view of an order's parcel (one per order)."""

    __tablename__ = "shipments"
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tracking_number: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20))  # in_transit | delivered | attempted | lost
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failed delivery attempts
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CarrierRequestRecord(Base):
    """An investigation or redelivery asked of the carrier; the key makes a retry a lookup."""

    __tablename__ = "carrier_requests"
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(200), index=True)
    order_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))  # investigation | redelivery
    reference: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


# ---- staff -------------------------------------------------------------------------------


class Staff(Base):
    __tablename__ = "staff"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    # agent | backend | warehouse | supervisor | manager | qa | accounting
    role: Mapped[str] = mapped_column(String(20))
    approval_limit: Mapped[Decimal] = mapped_column(Cents, default=Decimal("0"))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Delegation(Base):
    """A manager away names a delegate for a period."""

    __tablename__ = "delegations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id"), index=True)
    delegate_id: Mapped[str] = mapped_column(ForeignKey("staff.id"))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)


# ---- cases -------------------------------------------------------------------------------


class Case(Base):
    __tablename__ = "cases"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the workflow id
    type: Mapped[str] = mapped_column(String(20), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    step: Mapped[str] = mapped_column(String(200))
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[Decimal | None] = mapped_column(Cents)
    requested_by: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditRecord(Base):
    """Every step, decision and message of a case: who, what, when."""

    __tablename__ = "audit_trail"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    event: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, str]] = mapped_column(JSON)


# Append-only in the database itself: triggers refuse an UPDATE or DELETE of its rows
# (infra/append_only.py; migration 0009 creates the same).
append_only.install(Base.metadata.tables[AuditRecord.__tablename__])


class Approval(Base):
    """The approval request of a case, as the approvals list shows it."""

    __tablename__ = "approvals"
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    amount: Mapped[Decimal] = mapped_column(Cents)
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    remind_at: Mapped[datetime] = mapped_column(UtcDateTime)
    escalate_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    eligible_approvers: Mapped[list[str]] = mapped_column(JSON)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    # What is asked: an authorization over a threshold, or an exception to a written rule
    # (``rule`` names it: RETURN_WINDOW, FREIGHT_CLAIM_ABOVE...), for the exceptions report.
    kind: Mapped[str] = mapped_column(
        String(30), default="authorization", server_default="authorization"
    )
    rule: Mapped[str | None] = mapped_column(String(64))


class SlaClock(Base):
    """One deadline of a case on business time: when it started, warns (75% of its budget)
    and falls due, and whether it warned, was breached or stopped in time.

    One row per run of a clock (``key`` = case, clock and run), so a retried activity
    records it once and a clock that runs again (a weekly follow-up) has a row per run.
    """

    __tablename__ = "sla_clocks"
    __table_args__ = (Index("ix_sla_clocks_open", "stopped_at", "due_at"),)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    procedure: Mapped[str] = mapped_column(String(20), index=True)
    clock: Mapped[str] = mapped_column(String(40), index=True)
    owner: Mapped[str] = mapped_column(String(64))  # a role or a staff id: who is warned
    budget_seconds: Mapped[int] = mapped_column(Integer)  # business seconds
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    warn_at: Mapped[datetime] = mapped_column(UtcDateTime)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    breached_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LedgerEntry(Base):
    """Money paid out. The unique key makes a retried payment a no-op."""

    __tablename__ = "refund_ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(250), unique=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    method: Mapped[str] = mapped_column(String(20))  # original_payment | store_credit
    amount: Mapped[Decimal] = mapped_column(Cents)
    reference: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OrderNote(Base):
    """A note on an order (why it was cancelled or changed), for trend analysis; one per case
    and kind, so a retried write is a no-op."""

    __tablename__ = "order_notes"
    __table_args__ = (UniqueConstraint("case_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    case_id: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # cancellation_reason | change_reason | ...
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class OrderChangeRecord(Base):
    """An order change applied by a case: once per case (the primary key)."""

    __tablename__ = "order_changes"
    case_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # address | quantity | item
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    # What the change adds to the order's price (negative: what it takes off).
    difference: Mapped[Decimal] = mapped_column(Cents)
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CarrierClaim(Base):
    """A freight claim filed with the carrier, once per key; the carrier settles or denies it."""

    __tablename__ = "carrier_claims"
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(200), index=True)
    order_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Cents)
    reference: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))  # filed | settled | denied
    settled_amount: Mapped[Decimal | None] = mapped_column(Cents)
    filed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OrderCharge(Base):
    """A charge on an order beyond its price (a rush fee, the cost of an order change). The
    unique key makes a retried charge a no-op."""

    __tablename__ = "order_charges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(250), unique=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(Cents)
    reference: Mapped[str] = mapped_column(String(64))
    charged_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RefundReservation(Base):
    """An amount held on an order for one payment, keyed like the payment itself.

    ``held`` while the payment may still happen, ``paid`` once the ledger row is written (in
    the same transaction), ``released`` when it will not happen (declined, given up, the
    return refused or expired). A released reservation is final for its key.
    """

    __tablename__ = "refund_reservations"
    idempotency_key: Mapped[str] = mapped_column(String(250), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[Decimal] = mapped_column(Cents)
    status: Mapped[str] = mapped_column(String(10), index=True)  # held | paid | released
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OutboxEmail(Base):
    """Emails waiting for (or done with) delivery; written with their audit line."""

    __tablename__ = "email_outbox"
    __table_args__ = (Index("ix_email_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(250), unique=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    template: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(10), default="queued", index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Delivery (activities.mail): not before ``next_attempt_at`` (NULL: at once), and by one
    # dispatcher at a time, the one named in ``claimed_by`` until ``claimed_until``.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


# ---- engine ------------------------------------------------------------------------------


def _sqlite_pragmas(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over
    # (the SQLAlchemy-documented recipe). BEGIN IMMEDIATE makes concurrent writers queue on
    # the busy timeout instead of failing halfway through a transaction.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # A read takes no write lock: in WAL mode it reads the last committed state while a
        # writer works, instead of queueing behind every writer for a lock it never needs.
        reading = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


READ_ONLY = "casework_read_only"


class Database:
    """An engine and its sessions; one per process, shared by activities and the API."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.engine = create_engine(url, connect_args={"timeout": 30})
            _sqlite_pragmas(self.engine)
        else:
            # No ping before each checkout: it cost a round trip per transaction. A connection
            # the server dropped fails its first statement, SQLAlchemy discards the pool's
            # connections, and the retry (every activity is retried and idempotent; the API
            # answers 503 "retry") gets a fresh one. Recycling bounds how old one can get.
            self.engine = create_engine(
                url, pool_pre_ping=False, pool_recycle=1800, pool_size=10, max_overflow=10
            )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._reads = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only: it sees the last committed state and, on SQLite, does
        not wait for (or hold up) writers. Writing in it is a bug (SQLite would refuse the
        commit when a writer got there first); use ``transaction``."""
        with self._reads.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


# ---- HTTP idempotency and return authorizations ----------------------------------------------


class ApiRequest(Base):
    """A start request seen by the HTTP API: same key and body is the same case."""

    __tablename__ = "api_requests"
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    body_hash: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReturnAuthorization(Base):
    """An RA number, minted once per return case; the id numbers it (RA-2026-000123)."""

    __tablename__ = "return_authorizations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ra_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), unique=True)
    order_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="issued")  # issued|received|expired
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# ---- decision codes ----------------------------------------------------------------------


class DecisionCode(Base):
    """A single-use proof for a decision sent by signal: one per approver per approval email.

    Only a hash is kept. A code is bound to its case, approver and request (``requested_at``),
    expires with the request, and is spent by the first decision event that presents it.
    """

    __tablename__ = "decision_codes"
    __table_args__ = (UniqueConstraint("case_id", "staff_id", "code_hash"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    staff_id: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    code_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    used_by_event: Mapped[str | None] = mapped_column(String(200))
