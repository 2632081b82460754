"""Deciding from the email: ``/decide/{token}``, the page an approval email's Approve and
Reject links open (docs/approval-gate.md, "Deciding from the email").

GET (and HEAD) only shows: a mail scanner or a link preview follows links, and must never
decide. The page's form POSTs back to the same address; the decision then goes to the case as
the update ``decide_with_code``, carrying the approver's decision code, which the gate checks
and spends as it does a signal's. The link is the approver's proof of identity: the decision
is recorded as theirs.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import cast
from urllib.parse import parse_qs, urlsplit

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import Select, select
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities import decision_links
from activities.decision_codes import DecisionCodes, IssuedCode
from activities.decision_links import DecisionLink
from activities.orders import OrderSystem
from activities.staff import StaffDirectory
from infra.db import Approval, Case, Database, Staff
from settings import Settings
from starter import CaseNotAnswering, DecisionRefused, case_state, decide
from starter.api.auth import ServicesDep
from starter.api.decision_link_page import HEADERS, STATUS, Outcome, Shown, Summary, View, render
from workflows import policy
from workflows.models import ApprovalState, ApprovalStatus, CaseRules, Decision, DecisionKind

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)
QUERY_SECONDS = 5.0


@dataclass(frozen=True)
class Facts:
    """What the database says of a link: its code, and the request it belongs to."""

    issued: IssuedCode | None
    summary: Summary | None
    requested_at: datetime | None
    outcome: Outcome | None
    # Why the directory, as of now, refuses the approver (so the page offers no button that
    # must fail); the gate judges again, as of the decision, when the form is sent.
    refusal: str | None = None


class LinkFacts:
    """Reads only: a link's page never writes (the decision goes to the case)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._codes = DecisionCodes(db)
        self._staff = StaffDirectory(db)
        self._settings = settings
        module, _, factory = settings.order_system.partition(":")
        self._orders = cast(OrderSystem, getattr(importlib.import_module(module), factory)(db))

    def read(self, link: DecisionLink, now: datetime) -> Facts:
        issued = self._codes.look_up(case_id=link.case_id, staff_id=link.staff_id, code=link.code)
        if issued is None:
            return Facts(None, None, None, None)  # says nothing of a case to a wrong code
        with self._db.read() as session:
            case = session.get(Case, link.case_id)
            approval = session.get(Approval, link.case_id)
            if case is None or approval is None:
                return Facts(issued, None, None, None)
            names = {
                row.id: row.name
                for row in session.scalars(
                    _staff([approval.requested_by, approval.decided_by or ""])
                )
            }
            customer_id, order_id = case.customer_id, case.order_id
            summary = Summary(
                case_id=case.id,
                what=case.type.replace("_", " ").capitalize(),
                kind=approval.kind,
                rule=approval.rule,
                amount=approval.amount,
                currency=str(case.rules.get("currency", self._settings.currency)),
                order_id=order_id,
                customer_name="",
                reason=approval.reason,
                requester=_person(approval.requested_by, names),
                due_at=approval.due_at,
                timezone=self._timezone(case.rules),
            )
            outcome = Outcome(
                status=approval.status,
                decided_by=_person(approval.decided_by, names) if approval.decided_by else None,
                decided_at=approval.decided_at,
            )
            requested_at = approval.requested_at
            rules, requested_by = CaseRules.model_validate(case.rules), approval.requested_by
        customer = self._orders.get_customer(customer_id)
        summary = replace(summary, customer_name=customer.name if customer else customer_id)
        refusal = self._refusal(link.staff_id, summary, requested_by, rules, now)
        return Facts(issued, summary, requested_at, outcome, refusal)

    def _refusal(
        self, staff_id: str, summary: Summary, requested_by: str, rules: CaseRules, now: datetime
    ) -> str | None:
        """The gate's own rule (``verify_decision``), read ahead of the decision."""
        if not self._settings.decision_signals:
            return "deciding from the email is turned off; decide in My work"
        if self._staff.is_inactive(staff_id):
            return f"{staff_id} is no longer active in the staff directory"
        return policy.approver_refusal(
            self._staff.approver_directory(now),
            staff_id,
            amount=summary.amount,
            requested_by=requested_by,
            rules=rules,
        )

    def names(self, staff_ids: list[str]) -> dict[str, str]:
        with self._db.read() as session:
            return {row.id: row.name for row in session.scalars(_staff(staff_ids))}

    def _timezone(self, rules: dict[str, object]) -> str:
        calendar = rules.get("calendar")
        if isinstance(calendar, dict) and isinstance(calendar.get("timezone"), str):
            return str(calendar["timezone"])
        return self._settings.business_timezone


def _staff(staff_ids: list[str]) -> Select[Staff]:
    return select(Staff).where(Staff.id.in_([i for i in staff_ids if i]))


def _person(staff_id: str | None, names: dict[str, str]) -> str:
    if not staff_id:
        return "unknown"
    name = names.get(staff_id)
    return f"{name} ({staff_id})" if name and name != staff_id else staff_id


def judge(link: DecisionLink, facts: Facts, now: datetime) -> View:
    """What the link's page shows, from the facts alone (nothing is sent to the case)."""
    issued, summary, outcome = facts.issued, facts.summary, facts.outcome
    if issued is None or summary is None or outcome is None:
        return View(Shown.UNKNOWN, link.decision)
    view = View(Shown.CONFIRM, link.decision, summary, outcome)
    if issued.used_at is not None:
        return _replace(view, Shown.USED)
    if outcome.status == ApprovalStatus.EXPIRED.value:
        return _replace(view, Shown.EXPIRED)
    if outcome.status != ApprovalStatus.PENDING.value:
        return _replace(view, Shown.DECIDED)
    # A code of an earlier request of the case, or past its expiry (the case may not have
    # moved on yet): either way it can no longer decide.
    if issued.requested_at != facts.requested_at or now >= issued.expires_at:
        return _replace(view, Shown.EXPIRED)
    if facts.refusal:
        return _replace(view, Shown.NOT_AUTHORIZED, facts.refusal)
    return view


def _replace(view: View, shown: Shown, message: str = "") -> View:
    return View(shown, view.decision, view.summary, view.outcome, message or view.message)


def _page(view: View, settings: Settings) -> HTMLResponse:
    html = render(view, company=settings.company_name)
    return HTMLResponse(html, status_code=STATUS[view.shown], headers=HEADERS)


def _facts_reader(services: ServicesDep) -> LinkFacts:
    return LinkFacts(services.store.db, services.settings)


@router.api_route("/decide/{token}", methods=["GET", "HEAD"])
async def decision_page(token: str, services: ServicesDep) -> HTMLResponse:
    """The confirmation page, or why the link can no longer decide. Changes nothing."""
    link = decision_links.read(token)
    if link is None:
        return _page(View(Shown.UNKNOWN, DecisionKind.APPROVE), services.settings)
    now = datetime.now(UTC)
    facts = await run_in_threadpool(_facts_reader(services).read, link, now)
    return _page(judge(link, facts, now), services.settings)


@router.post("/decide/{token}")
async def confirm_decision(token: str, request: Request, services: ServicesDep) -> HTMLResponse:
    """The approver confirmed on the page: the decision goes to the case with the code."""
    link = decision_links.read(token)
    if link is None:
        return _page(View(Shown.UNKNOWN, DecisionKind.APPROVE), services.settings)
    reader = _facts_reader(services)
    now = datetime.now(UTC)
    view = judge(link, await run_in_threadpool(reader.read, link, now), now)
    if view.shown is not Shown.CONFIRM:
        return _page(view, services.settings)
    if not _same_origin(request, services.settings):
        # The token is the only credential and no cookie is involved, so a cross-site form
        # could only post a token it already has; refused all the same, as plain hygiene.
        return _page(
            _replace(view, Shown.REFUSED, "This form must be sent from its own page."),
            services.settings,
        )
    try:
        decision = Decision(
            approver_id=link.staff_id,
            decision=link.decision,
            note=await _note(request),
            event_id=link.event_id,
            code=link.code,
        )
    except (ValidationError, ValueError):
        too_long = "The note is too long (2000 characters at most)."
        return _page(_replace(view, Shown.REFUSED, too_long), services.settings)
    try:
        approval = await decide(services.client, link.case_id, decision, update="decide_with_code")
    except DecisionRefused as refused:
        view = await _after_refusal(services, reader, link, refused)
    except CaseNotAnswering:
        view = _replace(
            view,
            Shown.UNAVAILABLE,
            "The case did not answer in time; your decision may still apply. "
            "Open this link again in a minute to see.",
        )
    except (RPCError, WorkflowUpdateFailedError) as err:
        # Temporal unreachable, the case closed, or a worker that does not know the update.
        log.warning("decision_link_unavailable", case_id=link.case_id, error=type(err).__name__)
        now = datetime.now(UTC)
        again = judge(link, await run_in_threadpool(reader.read, link, now), now)
        view = (
            again
            if again.shown is not Shown.CONFIRM
            else _replace(view, Shown.UNAVAILABLE, "The case is not answering; try again later.")
        )
    else:
        view = _decided(
            view, approval, await run_in_threadpool(reader.names, [approval.decided_by or ""])
        )
    log.info(
        "decision_link_used",
        case_id=link.case_id,
        approver=link.staff_id,
        decision=link.decision.value,
        shown=view.shown.value,
    )
    return _page(view, services.settings)


def _decided(view: View, approval: ApprovalState, names: dict[str, str]) -> View:
    outcome = Outcome(
        status=approval.status.value,
        decided_by=_person(approval.decided_by, names),
        decided_at=approval.decided_at,
    )
    return View(Shown.DONE, view.decision, view.summary, outcome)


async def _after_refusal(
    services: ServicesDep, reader: LinkFacts, link: DecisionLink, refused: DecisionRefused
) -> View:
    """Why the case refused, in the page's terms: the facts as they now stand first (the code
    spent, the request decided or expired meanwhile), else the gate's own reason."""
    now = datetime.now(UTC)
    facts = await run_in_threadpool(reader.read, link, now)
    try:
        # The case knows a decision before its audit copy (the database) does.
        async with asyncio.timeout(QUERY_SECONDS):
            approval = (await case_state(services.client, link.case_id)).approval
    except (RPCError, WorkflowQueryFailedError, TimeoutError):
        approval = None  # the database's word, then
    if approval is not None and facts.outcome is not None:
        names = await run_in_threadpool(reader.names, [approval.decided_by or ""])
        decided_by = _person(approval.decided_by, names) if approval.decided_by else None
        outcome = Outcome(approval.status.value, decided_by, approval.decided_at)
        facts = replace(facts, outcome=outcome)
    view = judge(link, facts, now)
    if view.shown is Shown.CONFIRM:
        return _replace(view, Shown.NOT_AUTHORIZED, refused.message)
    return view


def _same_origin(request: Request, settings: Settings) -> bool:
    """The form was posted from this server's own page. Browsers say so in Sec-Fetch-Site
    (a header no page can set); under ``Referrer-Policy: no-referrer`` a form post's Origin is
    "null", so Origin is compared only when it names one. Neither: not a browser, it passes."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in {"same-origin", "none"}
    origin = request.headers.get("origin")
    if origin in (None, "null"):
        return True
    public = urlsplit(settings.public_url)
    own = {f"{request.url.scheme}://{request.url.netloc}", f"{public.scheme}://{public.netloc}"}
    return origin in own


async def _note(request: Request) -> str:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return ""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    note = fields.get("note", [""])[0]
    if len(note) > 2000:
        raise ValueError("note too long")
    return note


# ---- logs ------------------------------------------------------------------------------------


class MaskLinkTokens(logging.Filter):
    """uvicorn's access log prints each request's path: a link's token would be in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(mask_path(a) if isinstance(a, str) else a for a in record.args)
        return True


def mask_path(path: str) -> str:
    """``/decide/<token>`` without its token (for any log line that shows a path)."""
    return "/decide/..." if path.startswith("/decide/") else path


def mask_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, MaskLinkTokens) for f in access.filters):
        access.addFilter(MaskLinkTokens())
