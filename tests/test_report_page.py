"""The report's HTML page, opened in headless Chromium as a manager would open the file: its
charts are drawn and visible, and the numbers on the page are the known cases' numbers.
A screenshot is kept under tests/artifacts/ (gitignored) for a human look."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from infra.db import Database
from settings import Settings
from starter.report import ReportService, render
from tests.browser_helpers import chromium
from tests.conftest import Shop
from tests.report_helpers import at, seed_known_cases

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest.fixture
async def page(browser: Browser, shop: Shop, db: Database, tmp_path: Path) -> AsyncIterator[Page]:
    seed_known_cases(db)
    settings = Settings(database_url=shop.db.url, business_timezone="America/New_York")
    built = ReportService(db, settings).build(since=date(2026, 11, 1), now=at(6, 12))
    path = tmp_path / "report.html"
    path.write_text(render(built, "html"), encoding="utf-8")
    context = await browser.new_context(
        viewport=ViewportSize(width=1000, height=800), java_script_enabled=False
    )
    tab = await context.new_page()
    tab.set_default_timeout(10_000)
    requests: list[str] = []
    tab.on("request", lambda request: requests.append(request.url))
    await tab.goto(path.as_uri())
    yield tab
    # Self-contained: the file itself is the only thing the page loaded.
    assert requests == [path.as_uri()]
    await context.close()


async def figure(page: Page, name: str) -> str:
    # text_content: SVG text has no innerText; the figure must also be visible on screen.
    located = page.locator(f'[data-figure="{name}"]')
    await expect(located).to_be_visible()
    return (await located.text_content() or "").strip()


async def test_the_charts_are_drawn_and_visible(page: Page) -> None:
    for chart in ("chart-cases", "chart-decisions", "chart-breaches"):
        svg = page.locator(f"svg#{chart}")
        await expect(svg).to_be_visible()
        assert await svg.get_attribute("role") == "img"
        assert (await svg.locator("title").first.text_content() or "").strip()
        box = await svg.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] >= 60
    # Days 2-5 November: one stacked bar per procedure and day (2 + 4 + 3 + 2).
    await expect(page.locator("svg#chart-cases rect.bar")).to_have_count(11)
    await expect(page.locator("svg#chart-decisions rect.bar")).to_have_count(6)
    await expect(page.locator("svg#chart-breaches rect.bar")).to_have_count(2)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)


async def test_the_numbers_on_the_page_are_the_known_cases(page: Page) -> None:
    await expect(page.get_by_role("heading", level=1)).to_have_text("Case report")
    assert [await figure(page, f"opened-2026-11-0{day}") for day in (2, 3, 4, 5)] == [
        "3",
        "4",
        "4",
        "2",
    ]
    assert await figure(page, "refund-opened") == "3"
    assert await figure(page, "refund-closed") == "2"
    assert await figure(page, "refund-decision-median") == "2h 0m"
    assert await figure(page, "refund-decision-p90") == "3h 0m"
    assert await figure(page, "return-decision-median") == "7h 30m"
    assert await figure(page, "complaint-close-p90") == "4d 0h"
    # Decisions took 1 h, 3 h, 5 h and 10 h.
    assert [await figure(page, f"decisions-{b}") for b in ("< 1h", "1-4h", "4-8h", "8-24h")] == [
        "0",
        "2",
        "1",
        "1",
    ]
    assert await figure(page, "breaches-refund-approval_escalation") == "1"
    assert await figure(page, "breaches-complaint-complaint_follow_up") == "1"
    assert await figure(page, "follow-ups-ratio") == "50%"
    assert await figure(page, "granted-mgr-mia-RETURN_WINDOW") == "1"
    assert await figure(page, "reason-cancellation-ordered_by_mistake") == "2"
    vip = page.get_by_role("table", name="Cases of VIP customers")
    await expect(vip.get_by_role("row")).to_have_count(3)
    await expect(vip).to_contain_text("refund-r2")
    await expect(
        page.get_by_role("table", name="Exceptions to written rules asked of an approver")
    ).to_contain_text("120.00 USD")
