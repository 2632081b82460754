"""Email delivery: drains the outbox through a transport.

Workflows only ever queue (``activities.notifications``); delivery runs beside the worker
when EMAIL_TRANSPORT=smtp. A message is marked sent only after the server accepted it, so a
crash can at worst send one email twice, never lose one.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Protocol

import structlog
from sqlalchemy import select

from activities.db import Database, OutboxEmail
from settings import SmtpSettings

log = structlog.get_logger(__name__)

# After this many failed attempts a message stays "failed" for an operator to look at.
MAX_ATTEMPTS = 5


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SmtpTransport:
    def __init__(self, config: SmtpSettings) -> None:
        self._config = config

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self._config.host, self._config.port, timeout=30) as smtp:
            if self._config.starttls:
                smtp.starttls()
            if self._config.username:
                smtp.login(self._config.username, self._config.password or "")
            smtp.send_message(message)


class OutboxDispatcher:
    def __init__(self, db: Database, transport: Transport, *, sender: str) -> None:
        self._db = db
        self._transport = transport
        self._sender = sender

    def deliver_pending(self, batch: int = 50) -> int:
        """Send up to ``batch`` queued emails; returns how many were sent."""
        with self._db.transaction() as session:
            queued = session.scalars(
                select(OutboxEmail)
                .where(OutboxEmail.status == "queued")
                .order_by(OutboxEmail.id)
                .limit(batch)
            ).all()
        sent = 0
        for email in queued:
            message = EmailMessage()
            message["From"] = self._sender
            message["To"] = email.to_address
            message["Subject"] = email.subject
            message.set_content(email.body)
            try:
                self._transport.send(message)
            except (OSError, smtplib.SMTPException) as err:
                self._mark(email.id, error=str(err))
                log.warning("email_delivery_failed", email_id=email.id, error=str(err))
                continue
            self._mark(email.id, error=None)
            sent += 1
        return sent

    def _mark(self, email_id: int, *, error: str | None) -> None:
        with self._db.transaction() as session:
            email = session.get(OutboxEmail, email_id)
            if email is None:
                return
            email.attempts += 1
            if error is None:
                email.status, email.sent_at, email.last_error = "sent", datetime.now(UTC), None
            else:
                email.last_error = error
                email.status = "failed" if email.attempts >= MAX_ATTEMPTS else "queued"

    async def run(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        """Deliver until ``stop`` is set, polling every ``interval`` seconds."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.deliver_pending)
            except Exception:
                log.exception("email_dispatch_error")
            with contextlib.suppress(TimeoutError):  # the interval passed; poll again
                await asyncio.wait_for(stop.wait(), timeout=interval)
