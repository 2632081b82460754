"""The Web UI's codec calls, made by headless Chromium from another origin than the API's, as
the Temporal UI (on DEV_SERVER_UI_PORT) makes them: the codec session cookie crosses ports
and CORS lets the page read the answer; and the real Web UI of ``make run`` showing a case
decrypted once the browser is signed in."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from infra.codec import codec_for
from settings import Settings
from starter.api import create_app
from tests.browser_helpers import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import Shop
from tests.devstack import DevStack
from tests.http_helpers import bound_socket, serve

# What the UI runs: POST {endpoint}/decode with the namespace, cookies included or not.
DECODE = """async ([endpoint, namespace, body, credentials]) => {
  const answer = await fetch(endpoint + "/decode", {
    method: "POST", credentials,
    headers: {"Content-Type": "application/json", "X-Namespace": namespace},
    body: JSON.stringify(body),
  });
  return {status: answer.status, body: await answer.json()};
}"""


async def _blank(_: Any) -> HTMLResponse:
    return HTMLResponse("<!doctype html><title>Temporal UI stand-in</title>")


@pytest.fixture
async def sites(
    client: Client, settings: Settings, database_url: str, shop: Shop
) -> AsyncIterator[tuple[str, str]]:
    """(the API's URL, the UI origin's URL): two ports of 127.0.0.1."""
    ui_socket = bound_socket()
    ui_origin = f"http://127.0.0.1:{ui_socket.getsockname()[1]}"
    api_settings = settings.model_copy(update={"codec_ui_origins": (ui_origin,)})
    api = create_app(client, database_url=database_url, settings=api_settings)
    async with (
        serve(api, bound_socket()) as api_url,
        serve(Starlette(routes=[Route("/", _blank)]), ui_socket) as ui_url,
    ):
        yield api_url, ui_url


@pytest.fixture
async def page(sites: tuple[str, str]) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser: Browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        tab = await (await browser.new_context()).new_page()
        tab.set_default_timeout(10_000)
        yield tab
        await browser.close()


async def test_a_browser_signed_in_at_the_codec_decodes_for_a_page_of_the_ui_origin(
    page: Page, sites: tuple[str, str], shop: Shop, client: Client
) -> None:
    api_url, ui_url = sites
    [sealed] = await codec_for(Settings()).encode([Payload(data=b'"call 512 555 0100"')])
    body = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()},
                "data": base64.b64encode(sealed.data).decode(),
            }
        ]
    }
    endpoint = f"{api_url}/codec"

    await page.goto(ui_url)
    before = await page.evaluate(DECODE, [endpoint, client.namespace, body, "include"])
    await page.goto(f"{endpoint}/session")
    await page.get_by_label("Your API token").fill(shop.tokens["agent-amy"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Signed in: the Web UI may now show decrypted payloads."
    )
    await page.goto(ui_url)
    signed_in = await page.evaluate(DECODE, [endpoint, client.namespace, body, "include"])
    without_credentials = await page.evaluate(DECODE, [endpoint, client.namespace, body, "omit"])

    assert before["status"] == 401
    assert signed_in["status"] == 200
    [decoded] = signed_in["body"]["payloads"]
    assert base64.b64decode(decoded["data"]) == b'"call 512 555 0100"'
    assert without_credentials["status"] == 401


# The Web UI's own settings for its codec, as its Codec Server dialog stores them: the
# browser's endpoint, overriding the server's configuration, with cross-origin credentials.
UI_CODEC_SETTINGS = """(endpoint) => {
  localStorage.setItem("endpoint", JSON.stringify(endpoint));
  localStorage.setItem("overrideRemoteCodecConfiguration", "true");
  localStorage.setItem("includeCredentials", "true");
}"""


async def shows(page: Page, text: str, seconds: float = 15) -> bool:
    """Whether ``text`` appears on the page within ``seconds`` (the UI decodes as it renders)."""
    for _ in range(int(seconds / 0.25)):
        if text in await page.content():
            return True
        await page.wait_for_timeout(250)
    return False


async def test_the_temporal_web_ui_of_make_run_shows_a_case_decrypted_once_signed_in(
    tmp_path: Path,
) -> None:
    stack = DevStack.on_free_ports(tmp_path / "var")
    await asyncio.to_thread(stack.start)
    try:
        started = await asyncio.to_thread(
            stack.run,
            "python -m starter refund --order ORD-1002 --customer C-100 --amount 20.00 "
            "--reason 'Thawed, call Ada at 512 555 0100' --requested-by agent-amy "
            "--request-id ui-1",
        )
        assert started.returncode == 0, started.stderr
        token = re.search(r"agent-amy +agent +.* (cw_\S+)", stack.output())
        assert token is not None
        case_page = f"http://127.0.0.1:{stack.ui_port}/namespaces/default/workflows/refund-ui-1"
        endpoint = f"{stack.api}/codec"

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await (await browser.new_context()).new_page()
            page.set_default_timeout(15_000)
            await page.goto(f"http://127.0.0.1:{stack.ui_port}")
            await page.evaluate(UI_CODEC_SETTINGS, endpoint)
            await page.goto(case_page)
            loaded = await shows(page, "RefundWorkflow")  # the case's page, not decrypted
            before = await shows(page, "512 555 0100", seconds=5)
            await page.goto(f"{endpoint}/session")
            await page.get_by_label("Your API token").fill(token.group(1))
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("status")).to_contain_text("Signed in")
            await page.goto(case_page)
            after = await shows(page, "512 555 0100")
            await browser.close()

        assert loaded
        assert not before  # the UI asked the codec, which refused: ciphertext only
        assert after
    finally:
        stack.interrupt()
