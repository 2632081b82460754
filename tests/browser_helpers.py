"""Helpers the browser specifications share (the pages, driven in headless Chromium): the
system's Chromium and the flags it runs with on a build machine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = ViewportSize(width=390, height=844)
WIDE = ViewportSize(width=1440, height=900)
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # screenshots, not committed


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Chromium, closed on the way out."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Browser, site: str, viewport: ViewportSize) -> Page:
    """A fresh page (no cookies, no storage) on ``site`` at ``viewport``."""
    context = await browser.new_context(viewport=viewport, base_url=site)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    return page


async def serious_violations(page: Page) -> list[str]:
    """What axe-core finds serious or critical on the page as it stands."""
    results = await Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


async def screenshot(page: Page, folder: str, name: str) -> None:
    """Keep the whole page as ``tests/artifacts/<folder>/<name>.png``."""
    (ARTIFACTS / folder).mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / folder / f"{name}.png"), full_page=True)
