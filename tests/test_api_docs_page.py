"""``/docs`` works offline: Swagger UI's assets come from this server, never from a CDN."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Route, expect
from temporalio.client import Client

from settings import Settings
from starter.api import create_app
from tests.browser_helpers import chromium
from tests.http_helpers import serve


@pytest.fixture
async def site(client: Client, settings: Settings, database_url: str) -> AsyncIterator[str]:
    async with serve(create_app(client, database_url=database_url, settings=settings)) as url:
        yield url


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def test_docs_page_loads_its_assets_from_this_server(site: str) -> None:
    async with httpx.AsyncClient(base_url=site) as http:
        page = await http.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        assert assets, page.text
        for asset in assets:
            assert not urlsplit(asset).netloc, f"{asset} is fetched from elsewhere"
            assert (await http.get(asset)).status_code == 200, asset


async def test_docs_page_renders_with_no_network_but_this_server(
    site: str, browser: Browser
) -> None:
    context = await browser.new_context(base_url=site)
    elsewhere: list[str] = []

    async def offline(route: Route) -> None:
        if route.request.url.startswith(site):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    await context.route("**/*", offline)
    tab = await context.new_page()
    try:
        await tab.goto("/docs")
        await expect(tab.locator(".swagger-ui .info .title")).to_contain_text(
            "casework", timeout=15_000
        )
        await expect(tab.locator(".opblock-summary-path").first).to_be_visible()
    finally:
        await context.close()
    assert elsewhere == []
