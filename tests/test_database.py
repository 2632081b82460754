"""The database, specified once and run on SQLite and on PostgreSQL alike.

Every test here gets a fresh, migrated database of each backend (see ``database_url`` in
conftest); the PostgreSQL runs are skipped, with the reason, only where none is reachable.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError, StatementError

import migrations
from activities.cases import CaseActivities
from activities.payments import Held, RefundLedger
from activities.staff import StaffDirectory, hash_token
from infra.db import (
    AuditRecord,
    Base,
    Case,
    Customer,
    Database,
    LedgerEntry,
    Order,
    OutboxEmail,
    Staff,
)
from tests.conftest import Shop
from workflows.models import (
    AuditEntry,
    CaseOpening,
    CaseStatus,
    CaseType,
    Notice,
    Recipient,
    RefundInstruction,
    RefundMethod,
)

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def open_case(activities: CaseActivities, case_id: str = "refund-req-1") -> str:
    activities.open_case(
        CaseOpening(
            case_id=case_id,
            case_type=CaseType.REFUND,
            order_id="ORD-1001",
            customer_id="C-100",
            amount=Decimal("750.00"),
            requested_by="agent-amy",
            request={"request_id": "req-1"},
            opened_at=NOW,
        )
    )
    return case_id


def entry(case_id: str, seq: int, event: str, **changes: object) -> AuditEntry:
    return AuditEntry.model_validate(
        {"case_id": case_id, "seq": seq, "at": NOW, "event": event, "actor": "system", **changes}
    )


def audit_events(db: Database, case_id: str) -> list[tuple[int, str]]:
    with db.transaction() as session:
        rows = session.execute(
            sa.select(AuditRecord.seq, AuditRecord.event)
            .where(AuditRecord.case_id == case_id)
            .order_by(AuditRecord.seq)
        )
        return [(seq, event) for seq, event in rows]


def outbox(db: Database) -> list[OutboxEmail]:
    with db.transaction() as session:
        return list(session.scalars(sa.select(OutboxEmail).order_by(OutboxEmail.id)))


# ---- migrations ----------------------------------------------------------------------------


def test_migrations_build_the_models_schema_from_an_empty_database(database_url: str) -> None:
    config = migrations.alembic_config(database_url)
    command.downgrade(config, "base")
    engine = sa.create_engine(database_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}

        migrations.upgrade(database_url)

        head = ScriptDirectory.from_config(config).get_current_head()
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert context.get_current_revision() == head
            # Nothing a model declares is missing from (or different in) the migrations.
            assert compare_metadata(context, Base.metadata) == []
        assert set(sa.inspect(engine).get_table_names()) == {
            *Base.metadata.tables,
            "alembic_version",
        }
    finally:
        engine.dispose()


def test_upgrading_an_up_to_date_database_keeps_its_data(db: Database, database_url: str) -> None:
    with db.transaction() as session:
        session.add(Customer(id="C-1", name="Ada", email="ada@example.com", vip=False))
    migrations.upgrade(database_url)
    with db.transaction() as session:
        assert session.get(Customer, "C-1") is not None


# ---- column types --------------------------------------------------------------------------


def add_order(db: Database, order_id: str, total: Decimal, **changes: object) -> None:
    with db.transaction() as session:
        if session.get(Customer, "C-1") is None:
            session.add(Customer(id="C-1", name="Ada", email="ada@example.com", vip=False))
            session.flush()
        values: dict[str, object] = {
            "id": order_id,
            "customer_id": "C-1",
            "status": "delivered",
            "total": total,
            "refunded": Decimal("0"),
            "placed_at": NOW,
            **changes,
        }
        session.add(Order(**values))


def test_a_read_sees_the_last_commit_without_waiting_for_a_writer(db: Database) -> None:
    add_order(db, "ORD-R1", Decimal("100.00"))
    with db.transaction() as writer:
        # The writer holds its transaction (on SQLite, the database's one write lock) open.
        order = writer.get(Order, "ORD-R1")
        assert order is not None
        order.refunded = Decimal("40.00")
        writer.flush()
        with db.read() as reader:
            seen = reader.get(Order, "ORD-R1")
            assert seen is not None and seen.refunded == Decimal("0.00")
    with db.read() as reader:
        seen = reader.get(Order, "ORD-R1")
        assert seen is not None and seen.refunded == Decimal("40.00")


def test_money_round_trips_exactly(db: Database) -> None:
    add_order(db, "ORD-1", Decimal("0.10") + Decimal("0.20"))
    add_order(db, "ORD-2", Decimal("9999999999.99"))
    with db.transaction() as session:
        first, second = (session.get(Order, "ORD-1"), session.get(Order, "ORD-2"))
        assert first is not None and second is not None
        assert first.total == Decimal("0.30") and str(first.total) == "0.30"
        assert str(second.total) == "9999999999.99"
        assert str(first.refunded) == "0.00"


def test_money_is_stored_as_integer_cents(db: Database) -> None:
    add_order(db, "ORD-1", Decimal("12.34"))
    with db.transaction() as session:
        raw = session.execute(sa.text("SELECT total FROM orders WHERE id = 'ORD-1'")).scalar()
    assert raw == 1234 and isinstance(raw, int)


def test_fractions_of_a_cent_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="fractions of a cent"):
        add_order(db, "ORD-1", Decimal("1.005"))
    with db.transaction() as session:
        assert session.get(Order, "ORD-1") is None


def test_instants_come_back_aware_in_utc(db: Database) -> None:
    # 1:30 in New York on the night clocks go forward, still EST (UTC-5).
    local = datetime(2026, 3, 8, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    add_order(db, "ORD-1", Decimal("10.00"), placed_at=local)
    with db.transaction() as session:
        order = session.get(Order, "ORD-1")
        assert order is not None
        assert order.placed_at.tzinfo is UTC
        assert order.placed_at == datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
        assert order.delivered_at is None


def test_a_naive_instant_is_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        add_order(db, "ORD-1", Decimal("10.00"), placed_at=datetime(2026, 3, 8, 1, 30))  # noqa: DTZ001


# ---- the refund ledger ---------------------------------------------------------------------


def instruction(case_id: str, amount: str = "750.00") -> RefundInstruction:
    return RefundInstruction(
        case_id=case_id,
        idempotency_key=f"{case_id}/refund",
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal(amount),
        method=RefundMethod.ORIGINAL_PAYMENT,
        issued_at=NOW,
    )


def held(ledger: RefundLedger, case_id: str, amount: str = "750.00") -> RefundLedger:
    """The ledger with ``amount`` reserved for the case's payment: it pays only from a hold."""
    assert (
        ledger.hold(
            f"{case_id}/refund", case_id=case_id, order_id="ORD-1001", amount=Decimal(amount)
        )
        is Held.HELD
    )
    return ledger


def test_the_ledger_records_a_payment_once_per_key(
    shop: Shop, activities: CaseActivities, database_url: str
) -> None:
    case_id = open_case(activities)
    first = held(RefundLedger(shop.db), case_id).record(instruction(case_id), "RF-FIRST")
    # A second worker (its own engine) retrying the same payment with a new reference.
    other = Database(database_url)
    try:
        again = RefundLedger(other).record(instruction(case_id), "RF-SECOND")
    finally:
        other.dispose()
    assert again == first
    assert first.reference == "RF-FIRST" and first.amount == Decimal("750.00")
    with shop.db.transaction() as session:
        rows = list(session.scalars(sa.select(LedgerEntry)))
        order = session.get(Order, "ORD-1001")
        assert [(r.idempotency_key, r.reference) for r in rows] == [
            (f"{case_id}/refund", "RF-FIRST")
        ]
        assert order is not None and order.refunded == Decimal("750.00")
        assert order.reserved == Decimal("0.00")


def test_the_ledger_finds_a_payment_by_its_key(shop: Shop, activities: CaseActivities) -> None:
    case_id = open_case(activities)
    ledger = held(RefundLedger(shop.db), case_id)
    assert ledger.find(f"{case_id}/refund") is None
    receipt = ledger.record(instruction(case_id), "RF-1")
    assert ledger.find(f"{case_id}/refund") == receipt
    assert receipt.issued_at == NOW


def test_the_unique_key_holds_in_the_database_itself(
    shop: Shop, activities: CaseActivities
) -> None:
    case_id = open_case(activities)
    held(RefundLedger(shop.db), case_id).record(instruction(case_id), "RF-1")
    with pytest.raises(IntegrityError), shop.db.transaction() as session:
        session.add(
            LedgerEntry(
                idempotency_key=f"{case_id}/refund",
                case_id=case_id,
                order_id="ORD-1001",
                customer_id="C-100",
                method="store_credit",
                amount=Decimal("1.00"),
                reference="RF-2",
                issued_at=NOW,
            )
        )


# ---- cases, the audit trail and the outbox --------------------------------------------------


def test_a_case_keeps_the_rules_it_opened_with(shop: Shop, activities: CaseActivities) -> None:
    case_id = open_case(activities)
    stricter = CaseActivities(
        shop.db,
        orders=activities.orders,
        payments=activities.payments,
        carrier=activities.carrier,
        settings=activities.settings.model_copy(
            update={"refund_approval_above": Decimal("100.00")}
        ),
    )
    rules = stricter.open_case(
        CaseOpening(
            case_id=case_id,
            case_type=CaseType.REFUND,
            order_id="ORD-1001",
            customer_id="C-100",
            amount=Decimal("750.00"),
            requested_by="agent-amy",
            request={},
            opened_at=NOW,
        )
    )
    assert rules.refund_approval_above == Decimal("500.00")
    with shop.db.transaction() as session:
        case = session.get(Case, case_id)
        assert case is not None and case.rules["refund_approval_above"] == "500.00"


def test_an_audit_line_is_written_once_per_case_and_seq(
    shop: Shop, activities: CaseActivities
) -> None:
    case_id = open_case(activities)
    line = entry(case_id, 1, "verifying", status="verifying", step="Verifying the order")
    activities.record_event(line)
    activities.record_event(line)  # a retried activity
    assert audit_events(shop.db, case_id) == [(1, "verifying")]
    with shop.db.transaction() as session:
        case = session.get(Case, case_id)
        assert case is not None
        assert (case.status, case.step) == (CaseStatus.VERIFYING.value, "Verifying the order")


def approvers_notice(case_id: str, seq: int) -> Notice:
    return Notice(
        entry=entry(case_id, seq, "email_approval_reminder"),
        template="approval_reminder",
        recipient=Recipient.APPROVERS,
        staff_ids=("mgr-mia", "sup-sam"),
        context={
            "case_id": case_id,
            "case_type": "refund",
            "order_id": "ORD-1001",
            "amount": "750.00",
            "currency": "USD",
            "due_at": "2026-11-27 23:00 UTC",
        },
    )


def test_a_notice_sent_twice_queues_one_email_per_recipient(
    shop: Shop, activities: CaseActivities
) -> None:
    case_id = open_case(activities)
    notice = approvers_notice(case_id, 1)
    activities.send_notice(notice)
    activities.send_notice(notice)  # a retried activity
    emails = outbox(shop.db)
    assert sorted(e.to_address for e in emails) == [
        "mgr-mia@exoticmeats.com",
        "sup-sam@exoticmeats.com",
    ]
    assert {e.template for e in emails} == {"approval_reminder"}
    assert all(case_id in e.body and "750.00 USD" in e.subject for e in emails)
    assert audit_events(shop.db, case_id) == [(1, "email_approval_reminder")]


def test_a_notice_that_cannot_be_queued_leaves_no_audit_line(
    shop: Shop, activities: CaseActivities
) -> None:
    case_id = open_case(activities)
    # An email already holds the outbox key this notice's second recipient needs.
    with shop.db.transaction() as session:
        session.add(
            OutboxEmail(
                dedup_key=f"{case_id}/7/1",
                case_id=case_id,
                template="other",
                to_address="someone@exoticmeats.com",
                subject="s",
                body="b",
                created_at=NOW,
            )
        )
    with pytest.raises(IntegrityError):
        activities.send_notice(approvers_notice(case_id, 7))
    assert audit_events(shop.db, case_id) == []
    assert [e.template for e in outbox(shop.db)] == ["other"]


# ---- the staff directory -------------------------------------------------------------------


def test_a_new_staff_token_authenticates_and_is_stored_only_as_its_hash(db: Database) -> None:
    directory = StaffDirectory(db)
    token = directory.add(
        staff_id="mgr-new",
        name="New Manager",
        email="new@exoticmeats.com",
        role="manager",
        approval_limit=Decimal("2500.00"),
    )
    with db.transaction() as session:
        row = session.get(Staff, "mgr-new")
        assert row is not None
        stored = [str(getattr(row, c.key)) for c in Staff.__table__.columns]
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() == hash_token(token)
    assert not any(token in value for value in stored)
    member = directory.authenticate(token)
    assert member is not None
    assert (member.id, member.role, member.approval_limit) == (
        "mgr-new",
        "manager",
        Decimal("2500.00"),
    )


def test_a_wrong_token_or_an_inactive_person_does_not_authenticate(db: Database) -> None:
    directory = StaffDirectory(db)
    token = directory.add(staff_id="sup-x", name="X", email="x@exoticmeats.com", role="supervisor")
    assert directory.authenticate(token + "x") is None
    assert directory.authenticate(hash_token(token)) is None
    with db.transaction() as session:
        row = session.get(Staff, "sup-x")
        assert row is not None
        row.active = False
    assert directory.authenticate(token) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"role": "ceo"}, "role must be one of"),
        ({"approval_limit": Decimal("-1")}, "must not be negative"),
        ({"staff_id": "agent-amy"}, "already exists"),
    ],
)
def test_a_staff_entry_that_makes_no_sense_is_refused(
    db: Database, changes: dict[str, object], message: str
) -> None:
    directory = StaffDirectory(db)
    directory.add(staff_id="agent-amy", name="Amy", email="amy@exoticmeats.com", role="agent")
    values: dict[str, object] = {
        "staff_id": "new-1",
        "name": "N",
        "email": "n@exoticmeats.com",
        "role": "agent",
        **changes,
    }
    with pytest.raises(ValueError, match=message):
        directory.add(**values)  # type: ignore[arg-type]


def test_a_delegate_stands_in_only_during_the_delegation(db: Database) -> None:
    directory = StaffDirectory(db)
    directory.add(staff_id="mgr-max", name="Max", email="max@exoticmeats.com", role="manager")
    directory.add(staff_id="agent-dee", name="Dee", email="dee@exoticmeats.com", role="agent")
    starts, ends = NOW, NOW + timedelta(days=7)
    directory.delegate("mgr-max", "agent-dee", starts, ends)

    def acting_for(at: datetime) -> str | None:
        staff = {m.id: m for m in directory.approver_directory(at).staff}
        assert staff["mgr-max"].acting_for is None
        return staff["agent-dee"].acting_for

    assert acting_for(starts - timedelta(seconds=1)) is None
    assert acting_for(starts) == "mgr-max"
    assert acting_for(ends - timedelta(seconds=1)) == "mgr-max"
    assert acting_for(ends) is None


def test_a_delegation_must_end_after_it_starts_and_name_known_staff(db: Database) -> None:
    directory = StaffDirectory(db)
    directory.add(staff_id="mgr-max", name="Max", email="max@exoticmeats.com", role="manager")
    with pytest.raises(ValueError, match="must end after it starts"):
        directory.delegate("mgr-max", "mgr-max", NOW, NOW)
    with pytest.raises(ValueError, match="unknown staff id 'nobody'"):
        directory.delegate("mgr-max", "nobody", NOW, NOW + timedelta(days=1))


def test_approver_emails_are_looked_up_by_staff_id(shop: Shop) -> None:
    directory = StaffDirectory(shop.db)
    assert directory.emails(("mgr-mia", "sup-sam", "nobody")) == [
        "mgr-mia@exoticmeats.com",
        "sup-sam@exoticmeats.com",
    ]
    assert directory.emails(()) == []
