"""Deciding from the approval email: each approver's Approve and Reject links, the page they
open, and the decision its form sends, over the real API, worker and time-skipping server."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import update
from structlog.testing import capture_logs
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities import decision_links
from activities.decision_codes import DecisionCodes
from infra.db import Approval, Staff
from settings import Settings
from starter import case_state
from starter.api.decision_links import MaskLinkTokens
from tests.case_helpers import audit, emails, events, eventually, sleep_until, timers_started
from tests.conftest import Cases, Shop
from tests.decision_link_helpers import awaiting_approval, codes_used, links_of, paid
from workflows.models import ApprovalStatus, CaseStatus, DecisionKind, Outcome

ON_BOTH_DATABASES = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


async def approval_status(client: Client, case_id: str) -> ApprovalStatus:
    approval = (await case_state(client, case_id)).approval
    assert approval is not None
    return approval.status


@ON_BOTH_DATABASES
async def test_each_approver_gets_their_own_approve_and_reject_links(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    case_id = handle.id

    mia = await links_of(shop, case_id, "mgr-mia")
    max_ = await links_of(shop, case_id, "mgr-max")
    sam = await links_of(shop, case_id, "sup-sam")

    all_links = [link for links in (mia, max_, sam) for link in links.values()]
    assert all(set(links) == {"approve", "reject"} for links in (mia, max_, sam))
    assert len(set(all_links)) == 6
    assert all(link.startswith("/decide/") for link in all_links)
    approve = decision_links.read(mia["approve"].removeprefix("/decide/"))
    reject = decision_links.read(mia["reject"].removeprefix("/decide/"))
    assert approve is not None and reject is not None
    assert (approve.case_id, approve.staff_id, approve.decision) == (
        case_id,
        "mgr-mia",
        DecisionKind.APPROVE,
    )
    assert reject.decision is DecisionKind.REJECT and reject.code == approve.code


@ON_BOTH_DATABASES
async def test_opening_a_link_shows_the_request_and_changes_nothing(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "1100.00")
    case_id = handle.id
    link = (await links_of(shop, case_id, "mgr-mia"))["approve"]
    trail_before = events(shop, case_id)

    page = await http.get(link)
    head = await http.head(link)

    assert page.status_code == 200 and head.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert "Approve this refund?" in text
    for shown in (
        "1,100.00 USD",
        "ORD-1001",
        "Ada Lovelace",
        "thawed on arrival",
        "agent-amy",
        "(America/New_York)",
        '<button type="submit" class="approve">Approve</button>',
    ):
        assert shown in text, shown
    assert await approval_status(client, case_id) is ApprovalStatus.PENDING
    assert codes_used(shop, case_id) == {"mgr-mia": None, "mgr-max": None}
    assert events(shop, case_id) == trail_before


@ON_BOTH_DATABASES
async def test_confirming_approves_as_the_approver_and_the_refund_is_paid_once(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    case_id = handle.id
    mia = await links_of(shop, case_id, "mgr-mia")
    max_ = await links_of(shop, case_id, "mgr-max")

    confirmed = await http.post(mia["approve"], data={"note": "regular customer"})

    assert confirmed.status_code == 200
    assert "Approved by mgr-mia" in confirmed.text
    outcome: Outcome = await handle.result()
    assert outcome.status is CaseStatus.COMPLETED
    [approved] = [line for line in audit(shop, case_id) if line.event == "approval_approved"]
    assert (approved.actor, approved.detail["note"]) == ("mgr-mia", "regular customer")
    assert paid(shop, case_id) == [Decimal("750.00")]
    assert codes_used(shop, case_id)["mgr-mia"] is not None

    again = await http.post(mia["approve"], data={"note": "twice"})
    assert again.status_code == 409 and "This link was already used" in again.text
    other_decision = await http.get(mia["reject"])
    assert other_decision.status_code == 409 and "already used" in other_decision.text
    assert "<form" not in other_decision.text

    other_approver = await http.get(max_["reject"])
    assert other_approver.status_code == 409
    assert "Already decided by mgr-max" not in other_approver.text
    assert "Already decided by mgr-mia" in other_approver.text
    assert "<form" not in other_approver.text
    refused = await http.post(max_["reject"], data={})
    assert refused.status_code == 409
    assert paid(shop, case_id) == [Decimal("750.00")]
    assert codes_used(shop, case_id)["mgr-max"] is None


async def test_rejecting_from_the_email_rejects_the_request(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    case_id = handle.id
    link = (await links_of(shop, case_id, "sup-sam"))["reject"]

    assert "Reject this refund?" in (await http.get(link)).text
    confirmed = await http.post(link, data={"note": "outside policy"})

    assert confirmed.status_code == 200 and "Rejected by sup-sam" in confirmed.text
    outcome: Outcome = await handle.result()
    assert outcome.status is CaseStatus.REJECTED
    [rejected] = [line for line in audit(shop, case_id) if line.event == "approval_rejected"]
    assert rejected.actor == "sup-sam"
    assert paid(shop, case_id) == []


async def test_the_reminders_links_decide_too(
    http: httpx.AsyncClient, env: WorkflowEnvironment, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    first = await links_of(shop, handle.id, "mgr-mia")
    approval = (await case_state(client, handle.id)).approval
    assert approval is not None
    await timers_started(handle)
    await sleep_until(env, approval.remind_at + timedelta(minutes=1))

    reminded = await links_of(shop, handle.id, "mgr-mia", "approval_reminder")
    assert set(reminded.values()).isdisjoint(first.values())  # a fresh code
    confirmed = await http.post(reminded["approve"], data={})

    assert confirmed.status_code == 200 and "Approved by mgr-mia" in confirmed.text
    outcome: Outcome = await handle.result()
    assert outcome.status is CaseStatus.COMPLETED
    earlier = await http.get(first["reject"])
    assert earlier.status_code == 409 and "Already decided by mgr-mia" in earlier.text


async def test_two_approvers_confirming_at_once_settle_it_once(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    mia = await links_of(shop, handle.id, "mgr-mia")
    max_ = await links_of(shop, handle.id, "mgr-max")

    answers = await asyncio.gather(
        http.post(mia["approve"], data={}), http.post(max_["reject"], data={})
    )

    assert sorted(a.status_code for a in answers) == [200, 409]
    outcome: Outcome = await handle.result()
    decided = [line for line in audit(shop, handle.id) if line.event.startswith("approval_")]
    assert [line.event for line in decided] in (["approval_approved"], ["approval_rejected"])
    winner = next(a for a in answers if a.status_code == 200)
    assert f"by {decided[0].actor}" in winner.text
    amounts = paid(shop, handle.id)
    assert amounts == ([Decimal("750.00")] if outcome.status is CaseStatus.COMPLETED else [])


@ON_BOTH_DATABASES
async def test_an_expired_requests_link_shows_expired_without_a_form(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    case_id = handle.id
    link = (await links_of(shop, case_id, "mgr-mia"))["approve"]

    outcome: Outcome = await handle.result()  # skips 3 days
    assert outcome.status is CaseStatus.EXPIRED

    page = await http.get(link)
    assert page.status_code == 410 and "This request has expired" in page.text
    assert "<form" not in page.text
    posted = await http.post(link, data={})
    assert posted.status_code == 410
    assert codes_used(shop, case_id)["mgr-mia"] is None


@ON_BOTH_DATABASES
async def test_a_link_whose_approver_no_longer_has_the_authority_is_refused(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    case_id = handle.id
    link = (await links_of(shop, case_id, "sup-sam"))["approve"]
    with shop.db.transaction() as session:  # sup-sam's limit is lowered after the email
        session.execute(
            update(Staff).where(Staff.id == "sup-sam").values(approval_limit=Decimal("600.00"))
        )

    shown = await http.get(link)
    refused = await http.post(link, data={})

    assert shown.status_code == 403 and "<form" not in shown.text
    assert "sup-sam&#x27;s approval limit 600.00 is below 750.00" in shown.text
    assert refused.status_code == 403
    assert "You are not authorized to decide this request" in refused.text
    assert "sup-sam&#x27;s approval limit 600.00 is below 750.00" in refused.text
    assert await approval_status(client, case_id) is ApprovalStatus.PENDING
    assert codes_used(shop, case_id)["sup-sam"] is None


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "x" * 700,
        "ZDEKcmVmdW5k",  # a version line and a case, nothing else
        "%00%ff",
        decision_links.link("refund-req-0", "mgr-mia", DecisionKind.APPROVE, "0" * 12).token,
    ],
)
async def test_a_malformed_or_unknown_link_is_refused_plainly(
    http: httpx.AsyncClient, token: str
) -> None:
    for response in (
        await http.get(f"/decide/{token}"),
        await http.post(f"/decide/{token}", data={}),
    ):
        assert response.status_code == 404
        assert "This link is not valid" in response.text


@ON_BOTH_DATABASES
async def test_a_tampered_code_in_a_real_link_is_refused_and_spends_nothing(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    case_id = handle.id
    path = (await links_of(shop, case_id, "mgr-mia"))["approve"]
    real = decision_links.read(path.removeprefix("/decide/"))
    assert real is not None
    flipped = "1" if real.code[-1] == "0" else "0"
    forged = decision_links.link(case_id, "mgr-mia", DecisionKind.APPROVE, real.code[:-1] + flipped)
    as_other = decision_links.link(case_id, "mgr-max", DecisionKind.APPROVE, real.code)

    for link in (forged, as_other):
        response = await http.post(f"/decide/{link.token}", data={})
        assert response.status_code == 404
        assert case_id not in response.text  # a wrong code learns nothing of the case
    assert await approval_status(client, case_id) is ApprovalStatus.PENDING
    assert codes_used(shop, case_id) == {"sup-sam": None, "mgr-mia": None, "mgr-max": None}


async def test_a_form_posted_from_another_site_is_refused(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    case_id = handle.id
    link = (await links_of(shop, case_id, "mgr-mia"))["approve"]

    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        response = await http.post(link, data={}, headers=headers)
        assert response.status_code == 400
    assert await approval_status(client, case_id) is ApprovalStatus.PENDING
    assert codes_used(shop, case_id)["mgr-mia"] is None


@pytest.mark.parametrize("settings", [{"decision_signals": False}], indirect=True)
async def test_without_decision_codes_the_email_has_no_links_and_points_to_my_work(
    cases: Cases, client: Client, shop: Shop, settings: Settings
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    case_id = handle.id

    sent = await eventually(lambda: emails(shop, case_id, "approval_requested"))

    assert sent and all("/decide/" not in email.body for email in sent)
    assert all("decision code" not in email.body for email in sent)
    assert all(f"My work:\n  {settings.public_url}/work#{case_id}\n" in e.body for e in sent)


@pytest.mark.parametrize("settings", [{"decision_signals": False}], indirect=True)
async def test_a_link_sent_before_decision_codes_were_turned_off_no_longer_decides(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop, settings: Settings
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    # The state answers at once; the approval row is written with the request's email.
    await eventually(lambda: emails(shop, handle.id, "approval_requested"))
    # Issued as if before the switch: the code and link a worker with codes on would send.
    with shop.db.transaction() as session:
        approval = session.get(Approval, handle.id)
        assert approval is not None
        code = DecisionCodes.issue(
            session,
            case_id=handle.id,
            staff_id="mgr-mia",
            requested_at=approval.requested_at,
            expires_at=approval.due_at,
            at=approval.requested_at,
        )
    link = decision_links.link(handle.id, "mgr-mia", DecisionKind.APPROVE, code)

    shown = await http.get(f"/decide/{link.token}")
    posted = await http.post(f"/decide/{link.token}", data={})

    assert shown.status_code == posted.status_code == 403
    assert "deciding from the email is turned off; decide in My work" in shown.text
    assert await approval_status(client, handle.id) is ApprovalStatus.PENDING
    assert codes_used(shop, handle.id) == {"mgr-mia": None}


async def test_a_links_token_never_reaches_a_log_line(
    http: httpx.AsyncClient, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    link = (await links_of(shop, handle.id, "mgr-mia"))["approve"]
    token = link.removeprefix("/decide/")

    with capture_logs() as lines:
        await http.get(link)
        await http.post(link, data={"note": "fine"})
    access = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', None, None
    )
    access.args = ("127.0.0.1:5000", "GET", link, "1.1", 200)
    MaskLinkTokens().filter(access)

    requests = [line for line in lines if line["event"] == "http_request"]
    assert [line["path"] for line in requests] == ["/decide/...", "/decide/..."]
    assert all(token not in repr(line) for line in lines)
    assert token not in access.getMessage() and "/decide/..." in access.getMessage()
