"""The decision link's page, rendered on the server: no script, so it works in any mail
client's browser and a strict Content-Security-Policy holds (``default-src 'none'``)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from workflows.models import DecisionKind

HEADERS = {
    # The token is the credential: no cache may keep the page, no Referer may carry its URL.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
}


class Shown(StrEnum):
    """What the page shows, and the HTTP status it answers with."""

    CONFIRM = "confirm"  # the form
    DONE = "done"  # this link's decision applied, just now
    USED = "used"  # this link (or the approver's other one) decided already
    DECIDED = "decided"  # someone else decided
    EXPIRED = "expired"
    NOT_AUTHORIZED = "not_authorized"
    UNKNOWN = "unknown"
    REFUSED = "refused"  # the request itself (a foreign origin, a bad note)
    UNAVAILABLE = "unavailable"


STATUS = {
    Shown.CONFIRM: 200,
    Shown.DONE: 200,
    Shown.USED: 409,
    Shown.DECIDED: 409,
    Shown.EXPIRED: 410,
    Shown.NOT_AUTHORIZED: 403,
    Shown.UNKNOWN: 404,
    Shown.REFUSED: 400,
    Shown.UNAVAILABLE: 503,
}


@dataclass(frozen=True)
class Summary:
    """The case as the approver needs it to decide (read from the database)."""

    case_id: str
    what: str  # "Refund", "Freight claim" ...
    kind: str  # authorization | policy_exception | pricing_adjustment
    rule: str | None
    amount: Decimal
    currency: str
    order_id: str
    customer_name: str
    reason: str
    requester: str  # "Amy Agent (agent-amy)"
    due_at: datetime
    timezone: str


@dataclass(frozen=True)
class Outcome:
    """The decision as it stands, for the pages that show it instead of the form."""

    status: str  # approved | rejected | expired | pending
    decided_by: str | None = None  # a person's name and id
    decided_at: datetime | None = None


@dataclass(frozen=True)
class View:
    shown: Shown
    decision: DecisionKind
    summary: Summary | None = None
    outcome: Outcome | None = None
    message: str = ""  # why a decision was refused, in the server's words


def money(amount: Decimal, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def local_time(instant: datetime, timezone: str) -> str:
    """The instant in the business timezone, labelled:
    "Fri 4 Dec 2026, 14:00 EST (America/New_York)"."""
    local = instant.astimezone(ZoneInfo(timezone))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M %Z} ({timezone})"


def render(view: View, *, company: str) -> str:
    verb = "Approve" if view.decision is DecisionKind.APPROVE else "Reject"
    title, body = _content(view, verb)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>{_e(title)} · casework</title>
  <link rel="stylesheet" href="/static/decide.css">
</head>
<body>
  <header class="brand">{_e(company)} · approval request</header>
  <main class="{view.shown.value}">
{body}
  </main>
</body>
</html>
"""


def _content(view: View, verb: str) -> tuple[str, str]:
    summary = view.summary
    what = summary.what.lower() if summary else "request"
    facts = _facts(summary) if summary else ""
    match view.shown:
        case Shown.CONFIRM | Shown.REFUSED if summary is not None:
            title = f"{verb} this {what}?"
            error = f'<p class="error" role="alert">{_e(view.message)}</p>' if view.message else ""
            return title, (
                f"<h1>{_e(title)}</h1>\n"
                f'<p class="amount">{_e(money(summary.amount, summary.currency))}</p>\n'
                f"{error}{_form(view.decision, verb)}{facts}"
            )
        case Shown.DONE:
            done = "Approved" if view.decision is DecisionKind.APPROVE else "Rejected"
            title = f"{done}: thank you"
            return title, _status_page(title, f"{done} {_when(view)}.", "done", facts)
        case Shown.USED:
            title = "This link was already used"
            said = f"The request {_state(view)}." if view.outcome else ""
            return title, _status_page(
                title, f"Each link works once. {said}".strip(), "used", facts
            )
        case Shown.DECIDED:
            title = f"Already decided by {_who(view)}"
            return title, _status_page(title, f"The request {_state(view)}.", "info", facts)
        case Shown.EXPIRED:
            title = "This request has expired"
            return title, _status_page(
                title,
                "It can no longer be decided here; the case has moved on without a decision.",
                "info",
                facts,
            )
        case Shown.NOT_AUTHORIZED:
            title = "You are not authorized to decide this request"
            return title, _status_page(title, view.message, "error", facts)
        case Shown.UNAVAILABLE:
            title = "The case could not be reached"
            return title, _status_page(title, view.message, "error", facts)
        case _:
            title = "This link is not valid"
            return title, _status_page(
                title,
                "Check that the whole link was copied from the approval email.",
                "error",
                "",
            )


def _form(decision: DecisionKind, verb: str) -> str:
    return f"""<form method="post" class="decide">
  <label for="note">Note <span class="hint">(optional, kept in the audit trail)</span></label>
  <textarea id="note" name="note" rows="2" maxlength="2000"></textarea>
  <button type="submit" class="{decision.value}">{verb}</button>
</form>
"""


def _facts(summary: Summary) -> str:
    rows = [
        ("Case", summary.case_id),
        ("Asks for", _asks(summary)),
        ("Amount", money(summary.amount, summary.currency)),
        ("Order", summary.order_id),
        ("Customer", summary.customer_name),
        ("Reason", summary.reason),
        ("Requested by", summary.requester),
        ("Decide before", local_time(summary.due_at, summary.timezone)),
    ]
    items = "\n".join(f"  <dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in rows)
    return f'<h2>The request</h2>\n<dl class="facts">\n{items}\n</dl>\n'


def _asks(summary: Summary) -> str:
    match summary.kind:
        case "policy_exception":
            return f"An exception to {summary.rule or 'a written rule'}"
        case "pricing_adjustment":
            return "A pricing adjustment"
        case _:
            return "Manager authorization of the amount"


def _status_page(title: str, text: str, tone: str, facts: str) -> str:
    return f'<h1>{_e(title)}</h1>\n<p class="message {tone}" role="status">{_e(text)}</p>\n{facts}'


def _who(view: View) -> str:
    return (view.outcome.decided_by if view.outcome else None) or "someone else"


def _when(view: View) -> str:
    outcome, summary = view.outcome, view.summary
    who = f"by {_who(view)}"
    if outcome and outcome.decided_at and summary:
        return f"{who} at {local_time(outcome.decided_at, summary.timezone)}"
    return who


def _state(view: View) -> str:
    outcome = view.outcome
    if outcome is None or outcome.status == "pending":
        return "is still waiting for a decision"
    if outcome.status == "expired":
        return "has expired"
    return f"was {outcome.status} {_when(view)}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
