"""Email delivery from the outbox through a real SMTP server (aiosmtpd, on loopback)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from activities.db import Case, Database, OutboxEmail
from activities.mail import MAX_ATTEMPTS, OutboxDispatcher, SmtpTransport
from settings import SmtpSettings


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


def _queue(db: Database, *addresses: str) -> None:
    now = datetime.now(UTC)
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
                            subject="Your refund", body="It is on its way.", created_at=now)
            )  # fmt: skip


def _statuses(db: Database) -> list[tuple[str, str, int]]:
    with db.transaction() as session:
        rows = session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()
        return [(r.to_address, r.status, r.attempts) for r in rows]


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
    assert mailbox.messages[0]["Subject"] == "Your refund"
    assert _statuses(db) == [("ada@example.com", "sent", 1), ("grace@example.com", "sent", 1)]
    assert dispatcher.deliver_pending() == 0  # nothing is sent twice


def test_unreachable_server_keeps_emails_queued_then_marks_them_failed(db: Database) -> None:
    _queue(db, "ada@example.com")
    dispatcher = OutboxDispatcher(
        db, SmtpTransport(SmtpSettings(port=_free_port())), sender="support@exoticmeats.com"
    )
    assert dispatcher.deliver_pending() == 0
    assert _statuses(db) == [("ada@example.com", "queued", 1)]
    for _ in range(MAX_ATTEMPTS - 1):
        dispatcher.deliver_pending()
    assert _statuses(db) == [("ada@example.com", "failed", MAX_ATTEMPTS)]
