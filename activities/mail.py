"""Email delivery: drains the outbox through a transport.

Workflows only ever queue (``activities.notifications``); delivery runs beside each worker
when EMAIL_TRANSPORT=smtp, so several dispatchers may drain one outbox at once. A dispatcher
first *claims* the emails it will send (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on both
databases a conditional update that only takes rows nobody holds), holds them for a lease,
and confirms the claim again just before each send: two dispatchers never send the same
email. A message is marked sent only after the server accepted it, so a crash between the two
can at worst send one email twice, never lose one.

A failed attempt (SMTP down, refused) leaves the email queued with a next attempt time,
backing off exponentially up to a cap; only an email still undelivered a long, configured
time after it was queued is marked ``failed`` for an operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import smtplib
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

import structlog
from sqlalchemy import ColumnElement, and_, or_, select, update
from temporalio.common import MetricMeter

from infra.db import Database, OutboxEmail
from settings import Settings, SmtpSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class MailRetry:
    """How long to wait after failed attempts, when to give up, how long a claim holds."""

    first_interval: timedelta = timedelta(seconds=30)
    max_interval: timedelta = timedelta(minutes=30)
    give_up_after: timedelta = timedelta(days=2)
    lease: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: Settings) -> MailRetry:
        return cls(
            first_interval=settings.email_retry_first_interval,
            max_interval=settings.email_retry_max_interval,
            give_up_after=settings.email_give_up_after,
            lease=settings.email_claim_lease,
        )

    def wait_after(self, attempts: int) -> timedelta:
        """The pause after the ``attempts``-th failed attempt: doubling, capped."""
        doublings = min(max(attempts - 1, 0), 30)  # 2**30 intervals exceed any sane cap
        return min(self.first_interval * (1 << doublings), self.max_interval)


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


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OutboxDispatcher:
    def __init__(
        self,
        db: Database,
        transport: Transport,
        *,
        sender: str,
        retry: MailRetry | None = None,
        clock: Callable[[], datetime] = _utcnow,
        meter: MetricMeter = MetricMeter.noop,
    ) -> None:
        self._db = db
        self._transport = transport
        self._sender = sender
        self._retry = retry or MailRetry()
        self._clock = clock
        # Names this dispatcher's claims; unique per process and instance.
        self.token = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        # On the worker's metrics endpoint (the worker passes its runtime's meter).
        self._sent_count = meter.create_counter(
            "casework_emails_sent", "Emails the SMTP server accepted, per template"
        )
        self._failed_count = meter.create_counter(
            "casework_emails_failed",
            "Emails given up on (EMAIL_GIVE_UP_AFTER) and left failed, per template",
        )
        self._attempt_failed_count = meter.create_counter(
            "casework_email_attempts_failed",
            "Delivery attempts that failed (retried later), per error type",
        )

    def deliver_pending(self, batch: int = 50) -> int:
        """Send up to ``batch`` due emails this dispatcher could claim; returns how many."""
        sent = 0
        for email in self.claim(batch):
            if not self._still_mine(email.id):
                continue  # the lease ran out and another dispatcher took it over
            message = EmailMessage()
            message["From"] = self._sender
            message["To"] = email.to_address
            message["Subject"] = email.subject
            message.set_content(email.body)
            try:
                self._transport.send(message)
            except (OSError, smtplib.SMTPException) as err:
                self._failed(email.id, err)
                continue
            self._sent(email.id, email.template)
            sent += 1
        return sent

    def claim(self, batch: int = 50) -> list[OutboxEmail]:
        """Take up to ``batch`` due emails that no other dispatcher holds, for the lease."""
        now = self._clock()
        claimable = and_(
            OutboxEmail.status == "queued",
            or_(OutboxEmail.next_attempt_at.is_(None), OutboxEmail.next_attempt_at <= now),
            self._free(now),
        )
        with self._db.transaction() as session:
            # PostgreSQL: rows another dispatcher is claiming right now are skipped, not waited
            # for. SQLite has no row locks (the clause is left out); its writers are
            # serialized by BEGIN IMMEDIATE. On both, the update below only takes rows that
            # are still claimable, so a row is never held by two dispatchers.
            ids = session.scalars(
                select(OutboxEmail.id)
                .where(claimable)
                .order_by(OutboxEmail.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            if not ids:
                return []
            session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id.in_(ids), claimable)
                .values(claimed_by=self.token, claimed_until=now + self._retry.lease)
                .execution_options(synchronize_session=False)
            )
            return list(
                session.scalars(
                    select(OutboxEmail)
                    .where(OutboxEmail.id.in_(ids), OutboxEmail.claimed_by == self.token)
                    .order_by(OutboxEmail.id)
                )
            )

    def _free(self, now: datetime) -> ColumnElement[bool]:
        return or_(OutboxEmail.claimed_until.is_(None), OutboxEmail.claimed_until < now)

    def _still_mine(self, email_id: int) -> bool:
        """Confirm (and extend) the claim just before sending: a stale claim sends nothing."""
        now = self._clock()
        with self._db.transaction() as session:
            result = session.execute(
                update(OutboxEmail)
                .where(
                    OutboxEmail.id == email_id,
                    OutboxEmail.status == "queued",
                    OutboxEmail.claimed_by == self.token,
                )
                .values(claimed_until=now + self._retry.lease)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def _sent(self, email_id: int, template: str) -> None:
        with self._db.transaction() as session:
            email = session.get(OutboxEmail, email_id)
            if email is None:
                return
            email.attempts += 1
            email.status, email.sent_at, email.last_error = "sent", self._clock(), None
            email.claimed_by = email.claimed_until = email.next_attempt_at = None
        self._sent_count.add(1, {"template": template})

    def _failed(self, email_id: int, err: Exception) -> None:
        now = self._clock()
        with self._db.transaction() as session:
            email = session.get(OutboxEmail, email_id)
            if email is None:
                return
            email.attempts += 1
            email.last_error = str(err)[:2000]
            email.claimed_by = email.claimed_until = None
            queued_for = now - min(email.created_at, now)
            if queued_for >= self._retry.give_up_after:
                email.status, email.next_attempt_at = "failed", None
            else:
                email.next_attempt_at = now + self._retry.wait_after(email.attempts)
            status, attempts, next_at = email.status, email.attempts, email.next_attempt_at
            template = email.template
        self._attempt_failed_count.add(1, {"error_type": type(err).__name__})
        if status == "failed":
            self._failed_count.add(1, {"template": template})
        # The error text may quote the recipient's address: log its kind, never the text.
        log.warning(
            "email_delivery_failed",
            email_id=email_id,
            error_type=type(err).__name__,
            smtp_code=getattr(err, "smtp_code", None),
            attempts=attempts,
            status=status,
            next_attempt_at=next_at.isoformat() if next_at else None,
        )

    async def run(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        """Deliver until ``stop`` is set, polling every ``interval`` seconds."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.deliver_pending)
            except Exception:
                log.exception("email_dispatch_error")
            with contextlib.suppress(TimeoutError):  # the interval passed; poll again
                await asyncio.wait_for(stop.wait(), timeout=interval)
