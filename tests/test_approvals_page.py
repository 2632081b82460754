"""The approvals page, driven in headless Chromium over uvicorn, the time-skipping server and
the real worker, on a phone-sized screen."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, expect
from sqlalchemy import select
from temporalio.client import Client

from infra.db import Approval
from settings import Settings
from starter import case_state, decide
from starter.api import create_app
from tests.browser_helpers import chromium
from tests.conftest import Cases, Shop
from tests.http_helpers import serve
from workflows.models import ApprovalStatus, Decision, DecisionKind, RefundRequest

PHONE = ViewportSize(width=390, height=844)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def site(
    client: Client, cases: Cases, settings: Settings, database_url: str
) -> AsyncIterator[str]:
    async with serve(create_app(client, database_url=database_url, settings=settings)) as url:
        yield url


@pytest.fixture
async def page(browser: Browser, site: str) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=PHONE, base_url=site)
    tab = await context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    await context.close()


async def awaiting_approval(cases: Cases, shop: Shop, amount: str) -> str:
    """A refund waiting for a manager, once the approvals list (database) shows it."""
    request = RefundRequest(
        request_id=f"req-{uuid.uuid4().hex[:10]}",
        order_id="ORD-1001",
        customer_id="C-100",
        amount=Decimal(amount),
        reason="thawed on arrival",
        requested_by="agent-amy",
    )
    handle = await cases.refund(request)
    await approval_status(shop, handle.id, ApprovalStatus.PENDING)
    return handle.id


async def approval_status(shop: Shop, case_id: str, status: ApprovalStatus) -> None:
    for _ in range(200):
        with shop.db.transaction() as session:
            row = session.scalar(select(Approval.status).where(Approval.case_id == case_id))
        if row == status.value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{case_id}'s approval never became {status}")


async def sign_in(page: Page, token: str, path: str = "/approvals") -> None:
    await page.goto(path)
    await page.get_by_label("Your API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()


def card(page: Page, case_id: str) -> Locator:
    return page.locator(".card").filter(has_text=case_id)


async def test_manager_approves_one_case_and_rejects_another(
    page: Page, cases: Cases, shop: Shop, client: Client
) -> None:
    approve_id = await awaiting_approval(cases, shop, "750.00")
    reject_id = await awaiting_approval(cases, shop, "800.00")
    await sign_in(page, shop.tokens["mgr-mia"])

    await expect(page.locator("#approvals .card")).to_have_count(2)
    summary = page.locator("#summary")
    await expect(summary).to_have_text("2 waiting for your decision, oldest first.")
    first = card(page, approve_id)
    await expect(first.locator(".amount")).to_have_text("750.00")
    await expect(first.locator(".order")).to_have_text("ORD-1001")

    await first.get_by_text("Timeline").click()
    await expect(first.locator(".entries")).to_contain_text("case opened")

    await first.get_by_label("Note").fill("regular customer")
    await first.get_by_role("button", name="Approve").click()
    await expect(page.locator("#notice")).to_have_text(f"Approved {approve_id} (750.00).")
    await expect(card(page, approve_id)).to_have_count(0)

    second = card(page, reject_id)
    await second.get_by_label("Note").fill("outside policy")
    await second.get_by_role("button", name="Reject").click()
    await expect(page.locator("#notice")).to_have_text(f"Rejected {reject_id} (800.00).")
    await expect(page.locator("#approvals .card")).to_have_count(0)
    await expect(summary).to_have_text("Nothing is waiting for you.")

    approved = (await case_state(client, approve_id)).approval
    rejected = (await case_state(client, reject_id)).approval
    assert approved is not None and rejected is not None
    assert (approved.status, approved.decided_by, approved.note) == (
        ApprovalStatus.APPROVED,
        "mgr-mia",
        "regular customer",
    )
    assert (rejected.status, rejected.note) == (ApprovalStatus.REJECTED, "outside policy")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]


async def test_refused_decision_shows_the_servers_reason(
    page: Page, cases: Cases, shop: Shop, client: Client
) -> None:
    case_id = await awaiting_approval(cases, shop, "750.00")
    # sup-low (limit 600.00) follows a link to the case, as from the approval email.
    await sign_in(page, shop.tokens["sup-low"], f"/approvals#case/{case_id}")
    await card(page, case_id).get_by_role("button", name="Approve").click()
    await expect(card(page, case_id).locator(".error")).to_have_text(
        "sup-low's approval limit 600.00 is below 750.00"
    )
    state = await case_state(client, case_id)
    assert state.approval is not None and state.approval.status is ApprovalStatus.PENDING


async def test_a_decision_taken_elsewhere_leaves_the_list(
    page: Page, cases: Cases, shop: Shop, client: Client
) -> None:
    case_id = await awaiting_approval(cases, shop, "750.00")
    await sign_in(page, shop.tokens["mgr-mia"])
    await expect(card(page, case_id)).to_have_count(1)

    await decide(client, case_id, Decision(approver_id="mgr-max", decision=DecisionKind.APPROVE))
    await approval_status(shop, case_id, ApprovalStatus.APPROVED)
    await page.get_by_role("button", name="Refresh").click()
    await expect(card(page, case_id)).to_have_count(0)


async def test_a_bad_token_is_refused_on_the_sign_in_form(page: Page) -> None:
    await sign_in(page, "cw_not-a-token")
    await expect(page.get_by_role("alert").first).to_have_text("the token is not valid")
    await expect(page.get_by_label("Your API token")).to_be_visible()
