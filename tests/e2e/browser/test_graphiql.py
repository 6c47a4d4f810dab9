"""GraphiQL in a real browser, the way a frontend developer first meets the API: open
``/graphql`` on a live gateway (development), type the API key into the headers tab, type a
customer query, press the run button, read the customer in the result pane. Every request
to anywhere but the gateway on loopback is blocked, so the page must need no CDN (its
assets are the gateway's: gateway/api/graphql/ide.py). The screenshot is kept under
``test-artifacts/screenshots/``; which browser, and when the test is skipped:
tests/e2e/browser/conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from gateway.app import create_app
from gateway.runtime import Runtime
from gateway.services.context import Services
from gateway.services.merchants import XSeriesCredentials, add_merchant
from gateway.settings import Environment, Settings
from gateway.store.api_keys import create_api_key
from tests.conftest import XSERIES_TOKEN, Backend
from tests.e2e.browser.conftest import CHROMIUM_FLAGS, SCREENSHOTS
from tests.support import SandboxHandle, ServerThread

if TYPE_CHECKING:
    from playwright.async_api import Locator, ViewportSize

SCREENSHOT = SCREENSHOTS / "graphiql-customer.png"
PNG = b"\x89PNG\r\n\x1a\n"
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
TIMEOUT_MS = 30_000
QUERY = '{ customers(search: "tony@stark.example") { firstName lastName loyaltyBalance } }'


async def value_of(editor: Locator) -> str:
    """The text in one of GraphiQL's editors (CodeMirror's own, not its rendering)."""
    value: str = await editor.locator(".CodeMirror").evaluate("el => el.CodeMirror.getValue()")
    return value


@pytest.fixture
def backend() -> Backend:
    """One store is enough: tests/api/test_graphql_reads.py reads customers on each."""
    return Backend("sqlite-memory", "", "memory://")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"environment": Environment.DEVELOPMENT})


@pytest.fixture
def live(runtime: Runtime, settings: Settings) -> Iterator[ServerThread]:
    server = ServerThread(create_app(settings), lifespan=True).start()
    yield server
    server.stop()


async def test_a_customer_query_runs_in_graphiql_with_the_key_in_its_headers_tab(
    chromium: str,
    runtime: Runtime,
    live: ServerThread,
    xseries: SandboxHandle,
    tmp_path: Path,
) -> None:
    from playwright.async_api import Route, async_playwright

    merchant = await add_merchant(
        Services(runtime),
        name="Stark Industries",
        xseries=XSeriesCredentials(xseries.url, XSERIES_TOKEN),
    )
    async with runtime.db.transaction() as session:
        key = await create_api_key(session, merchant.id)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    blocked: list[str] = []

    async def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort("blockedbyclient")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport=LAPTOP,
        )
        try:
            await browser.route("**/*", loopback_only)
            page = browser.pages[0] if browser.pages else await browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{live.url}/graphql")
            response = page.locator(".graphiql-response")
            # Its schema request went out without a key: the gateway said how to send one.
            await response.get_by_text("UNAUTHORIZED").wait_for()

            await page.get_by_role("button", name="Headers").click()
            headers = page.locator(".graphiql-editor-tool .graphiql-editor:not(.hidden)")
            await headers.click()
            await page.keyboard.type(json.dumps({"Authorization": f"Bearer {key}"}))
            await page.locator(".graphiql-query-editor .CodeMirror").click()
            await page.keyboard.press("Control+A")  # the welcome text goes
            await page.keyboard.type(QUERY)
            await page.get_by_role("button", name="Prettify query (Shift-Ctrl-P)").click()
            await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
            await response.get_by_text("Tony").wait_for()
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            visible = await response.inner_text()
            shown = json.loads(await value_of(response))
            typed = json.loads(await value_of(headers))

            # The page's own fetch of anything elsewhere is refused, so nothing it showed
            # came from another site.
            elsewhere = "https://unpkg.com/graphiql@3.8.3/package.json"
            outcome = await page.evaluate(
                "url => fetch(url).then(() => 'loaded', () => 'refused')", elsewhere
            )
        finally:
            await browser.close()

    assert "Tony" in visible and "Stark" in visible and "50.00" in visible
    assert typed == {"Authorization": f"Bearer {key}"}
    assert shown == {
        "data": {
            "customers": [{"firstName": "Tony", "lastName": "Stark", "loyaltyBalance": "50.00"}]
        }
    }
    assert outcome == "refused"
    assert blocked == [elsewhere]
    data = SCREENSHOT.read_bytes()
    assert len(data) > len(PNG) and data.startswith(PNG)
