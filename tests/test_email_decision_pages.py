"""The decision link's page in headless Chromium, over uvicorn, the time-skipping server and
the real worker: on a phone (390 px) and a desktop (1440 px), checked with axe-core, with
screenshots kept in tests/artifacts/decision-links/ (not committed)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect
from temporalio.client import Client

from settings import Settings
from starter import case_state
from starter.api import create_app
from tests.browser_helpers import (
    PHONE,
    WIDE,
    chromium,
    open_page,
    screenshot,
    serious_violations,
)
from tests.case_helpers import audit
from tests.conftest import Cases, Shop
from tests.decision_link_helpers import awaiting_approval, codes_used, links_of
from tests.http_helpers import serve
from workflows.models import ApprovalStatus, CaseStatus, Outcome


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


async def keep(page: Page, name: str) -> None:
    await screenshot(page, "decision-links", name)


@pytest.mark.parametrize(("viewport", "label"), [(PHONE, "390"), (WIDE, "1440")])
async def test_the_confirmation_page_fits_the_screen_and_passes_axe(
    browser: Browser,
    site: str,
    cases: Cases,
    client: Client,
    shop: Shop,
    viewport: ViewportSize,
    label: str,
) -> None:
    handle = await awaiting_approval(cases, client, "1100.00")
    link = (await links_of(shop, handle.id, "mgr-mia"))["approve"]
    page = await open_page(browser, site, viewport)

    await page.goto(link)

    await expect(page.get_by_role("heading", level=1)).to_have_text("Approve this refund?")
    await expect(page.locator(".amount")).to_have_text("1,100.00 USD")
    await expect(page.get_by_label("Note (optional, kept in the audit trail)")).to_be_visible()
    button = page.get_by_role("button", name="Approve")
    await expect(button).to_be_visible()
    box = await button.bounding_box()
    assert box is not None and box["y"] + box["height"] <= viewport["height"]  # no scrolling
    assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    assert await serious_violations(page) == []
    await keep(page, f"confirm-{label}")
    approval = (await case_state(client, handle.id)).approval
    assert approval is not None and approval.status is ApprovalStatus.PENDING
    await page.context.close()


async def test_an_approver_confirms_in_the_browser_and_the_link_is_then_spent(
    browser: Browser, site: str, cases: Cases, client: Client, shop: Shop
) -> None:
    handle = await awaiting_approval(cases, client, "750.00")
    mia = await links_of(shop, handle.id, "mgr-mia")
    max_ = await links_of(shop, handle.id, "mgr-max")
    page = await open_page(browser, site, PHONE)
    await page.goto(mia["approve"])

    await page.get_by_label("Note (optional, kept in the audit trail)").fill("loyal customer")
    await page.get_by_role("button", name="Approve").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Approved: thank you")
    await expect(page.get_by_role("status")).to_contain_text("Approved by mgr-mia at")
    assert await serious_violations(page) == []
    await keep(page, "approved-390")
    outcome: Outcome = await handle.result()
    assert outcome.status is CaseStatus.COMPLETED
    [approved] = [line for line in audit(shop, handle.id) if line.event == "approval_approved"]
    assert (approved.actor, approved.detail["note"]) == ("mgr-mia", "loyal customer")

    await page.goto(mia["approve"])
    await expect(page.get_by_role("heading", level=1)).to_have_text("This link was already used")
    await expect(page.get_by_role("button")).to_have_count(0)
    assert await serious_violations(page) == []
    await keep(page, "used-390")

    await page.goto(max_["reject"])
    await expect(page.get_by_role("heading", level=1)).to_have_text("Already decided by mgr-mia")
    await expect(page.get_by_role("button")).to_have_count(0)
    assert await serious_violations(page) == []
    await keep(page, "decided-390")
    assert codes_used(shop, handle.id)["mgr-max"] is None
    await page.context.close()


async def test_a_refusal_is_shown_plainly_on_a_desktop(
    browser: Browser, site: str, cases: Cases, client: Client, shop: Shop
) -> None:
    page = await open_page(browser, site, WIDE)

    response = await page.goto("/decide/not-a-real-link")

    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", level=1)).to_have_text("This link is not valid")
    assert await serious_violations(page) == []
    await keep(page, "unknown-1440")
    await page.context.close()
