"""Emails: rendered from templates (one per message) and queued in the outbox.

Queuing happens in the caller's transaction, with the audit line, so a case never records a
message it did not queue (or the reverse). Delivery is ``activities.mail``'s concern.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from string import Template

from sqlalchemy import event
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.common import MetricMeter

from infra.db import OutboxEmail

EMAILS_QUEUED = "casework_emails_queued"


class TemplateError(ValueError):
    """A template that cannot be filled: a fault in the code or the templates, not a hiccup."""


@dataclass(frozen=True)
class Email:
    subject: str
    body: str


@cache
def _template(name: str) -> tuple[Template, Template]:
    text = resources.files("activities").joinpath(f"templates/{name}.txt").read_text("utf-8")
    first, _, body = text.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"template {name} must start with a 'Subject: ' line")
    return Template(first.removeprefix("Subject: ")), Template(body)


def render(name: str, context: dict[str, str]) -> Email:
    """Fill template ``name``; a missing fact is an error, never a blank in a customer email."""
    try:
        subject, body = _template(name)
        return Email(subject=subject.substitute(context), body=body.substitute(context))
    except KeyError as err:
        raise TemplateError(f"template {name} uses ${err.args[0]}, which was not given") from err
    except (OSError, ValueError) as err:  # no such template, no Subject line, a stray "$"
        raise TemplateError(f"template {name} cannot be used: {err}") from err


def queue(
    session: Session,
    *,
    case_id: str,
    key: str,
    template: str,
    to: list[str],
    email: Email,
    at: datetime,
) -> None:
    for index, address in enumerate(to):
        session.add(
            OutboxEmail(
                dedup_key=f"{key}/{index}",
                case_id=case_id,
                template=template,
                to_address=address,
                subject=email.subject,
                body=email.body,
                created_at=at,
            )
        )
    _count_when_committed(session, template, len(to))


# The emails a session queued, counted once its transaction commits: a rolled back attempt
# (an activity retried, a dedup key already there) counts nothing.
_QUEUED = "casework.emails_queued"


def _count_when_committed(session: Session, template: str, count: int) -> None:
    if not count or not activity.in_activity():
        return
    if not event.contains(session, "after_commit", _committed):
        event.listen(session, "after_commit", _committed)
        event.listen(session, "after_rollback", _rolled_back)
    _, counts = session.info.setdefault(_QUEUED, (activity.metric_meter(), Counter[str]()))
    counts[template] += count


def _committed(session: Session) -> None:
    queued: tuple[MetricMeter, Counter[str]] | None = session.info.pop(_QUEUED, None)
    if queued is None:
        return
    meter, counts = queued
    counter = meter.create_counter(EMAILS_QUEUED, "Emails queued in the outbox, per template")
    for template, count in counts.items():
        counter.add(count, {"template": template})


def _rolled_back(session: Session) -> None:
    session.info.pop(_QUEUED, None)
