"""Email delivery from the outbox through a real SMTP server (aiosmtpd, on loopback).

Each worker runs a dispatcher beside it, so several dispatchers drain one outbox: a row is
claimed before it is sent (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a conditional update of
the claim on both), and an SMTP outage backs off instead of giving up.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from activities.mail import MailRetry, OutboxDispatcher, SmtpTransport
from infra.db import Case, Database, OutboxEmail
from settings import Settings, SmtpSettings

BOTH_DATABASES = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@dataclass
class Clock:
    """The dispatcher's clock, moved by hand: backoff is specified without sleeping."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


RETRY = MailRetry(
    first_interval=timedelta(seconds=30),
    max_interval=timedelta(minutes=30),
    give_up_after=timedelta(days=2),
)


def _queue(db: Database, *addresses: str, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    with db.transaction() as session:
        session.add(
            Case(id="refund-1", type="refund", status="completed", step="Closed",
                 order_id="ORD-1001", customer_id="C-100", amount=None, requested_by="a",
                 request={}, rules={}, opened_at=now, updated_at=now)
        )  # fmt: skip
        for index, address in enumerate(addresses):
            session.add(
                OutboxEmail(dedup_key=f"refund-1/1/{index}", case_id="refund-1",
                            template="refund_confirmed", to_address=address,
                            subject=f"Your refund ({index})", body="It is on its way.",
                            created_at=now)
            )  # fmt: skip


def _statuses(db: Database) -> list[tuple[str, str, int]]:
    with db.transaction() as session:
        rows = session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()
        return [(r.to_address, r.status, r.attempts) for r in rows]


@BOTH_DATABASES
def test_queued_emails_are_delivered_and_marked_sent(
    db: Database, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    _queue(db, "ada@example.com", "grace@example.com")
    dispatcher = OutboxDispatcher(
        db, SmtpTransport(SmtpSettings(port=port)), sender="support@exoticmeats.com"
    )
    assert dispatcher.deliver_pending() == 2
    assert [m["To"] for m in mailbox.messages] == ["ada@example.com", "grace@example.com"]
    assert mailbox.messages[0]["Subject"] == "Your refund (0)"
    assert _statuses(db) == [("ada@example.com", "sent", 1), ("grace@example.com", "sent", 1)]
    assert dispatcher.deliver_pending() == 0  # nothing is sent twice


def _row(db: Database) -> OutboxEmail:
    with db.transaction() as session:
        [row] = session.scalars(select(OutboxEmail))
        return row


@BOTH_DATABASES
def test_several_dispatchers_at_once_send_each_email_exactly_once(
    database_url: str, db: Database, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    addresses = [f"customer{n}@example.com" for n in range(40)]
    _queue(db, *addresses)
    # Each dispatcher as its own worker process would have it: its own engine and connections.
    databases = [Database(database_url) for _ in range(4)]
    start = threading.Barrier(len(databases))
    sent = [0] * len(databases)

    def drain(index: int) -> None:
        dispatcher = OutboxDispatcher(
            databases[index], SmtpTransport(SmtpSettings(port=port)), sender="support@x.com"
        )
        start.wait()
        while batch := dispatcher.deliver_pending(batch=5):
            sent[index] += batch

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(databases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for database in databases:
        database.dispose()

    received = sorted(str(m["To"]) for m in mailbox.messages)
    assert received == sorted(addresses)  # every email, none twice
    assert sum(sent) == len(addresses)
    assert {status for _, status, _ in _statuses(db)} == {"sent"}


@BOTH_DATABASES
def test_an_smtp_outage_keeps_the_email_queued_with_a_next_attempt_then_delivers_it(
    db: Database, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    clock = Clock(datetime.now(UTC))
    _queue(db, "ada@example.com", now=clock.now)
    down = OutboxDispatcher(
        db,
        SmtpTransport(SmtpSettings(port=_free_port())),
        sender="support@exoticmeats.com",
        retry=RETRY,
        clock=clock,
    )
    waits = []
    for _ in range(8):  # a long outage: 8 attempts, far more than the old 5
        assert down.deliver_pending() == 0
        row = _row(db)
        assert row.status == "queued"
        assert row.next_attempt_at is not None and row.next_attempt_at > clock.now
        assert row.last_error
        waits.append(row.next_attempt_at - clock.now)
        assert down.deliver_pending() == 0  # not due yet: no attempt is made
        assert _row(db).attempts == row.attempts
        clock.advance(waits[-1])
    # Exponential, then capped.
    assert waits[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert max(waits) == timedelta(minutes=30)

    up = OutboxDispatcher(
        db,
        SmtpTransport(SmtpSettings(port=port)),
        sender="support@exoticmeats.com",
        retry=RETRY,
        clock=clock,
    )
    assert up.deliver_pending() == 1
    assert [m["To"] for m in mailbox.messages] == ["ada@example.com"]
    assert _statuses(db) == [("ada@example.com", "sent", 9)]


@BOTH_DATABASES
def test_an_email_is_given_up_only_after_the_configured_time(db: Database) -> None:
    clock = Clock(datetime.now(UTC))
    _queue(db, "ada@example.com", now=clock.now)
    down = OutboxDispatcher(
        db,
        SmtpTransport(SmtpSettings(port=_free_port())),
        sender="support@exoticmeats.com",
        retry=RETRY,
        clock=clock,
    )
    queued_at = clock.now
    while clock.now < queued_at + RETRY.give_up_after - timedelta(minutes=31):
        down.deliver_pending()
        assert _row(db).status == "queued"
        clock.advance(timedelta(minutes=30))
    clock.advance(timedelta(hours=1))
    down.deliver_pending()
    row = _row(db)
    assert row.status == "failed"
    assert row.attempts > 90  # two days of attempts, each at most 30 minutes apart


@BOTH_DATABASES
def test_a_claim_left_by_a_crashed_dispatcher_is_taken_over_after_its_lease(
    db: Database, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    clock = Clock(datetime.now(UTC))
    _queue(db, "ada@example.com", now=clock.now)
    crashed = OutboxDispatcher(
        db, SmtpTransport(SmtpSettings(port=port)), sender="s@x.com", retry=RETRY, clock=clock
    )
    assert len(crashed.claim(batch=10)) == 1  # claimed, then the process died
    other = OutboxDispatcher(
        db, SmtpTransport(SmtpSettings(port=port)), sender="s@x.com", retry=RETRY, clock=clock
    )
    assert other.deliver_pending() == 0  # still someone else's
    clock.advance(RETRY.lease + timedelta(seconds=1))
    assert other.deliver_pending() == 1
    assert [m["To"] for m in mailbox.messages] == ["ada@example.com"]


def test_the_retry_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_RETRY_MAX_INTERVAL", "PT10M")
    monkeypatch.setenv("EMAIL_GIVE_UP_AFTER", "P5D")
    retry = MailRetry.from_settings(Settings())
    assert retry.max_interval == timedelta(minutes=10)
    assert retry.give_up_after == timedelta(days=5)
