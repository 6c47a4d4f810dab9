"""The connect flow in a real browser: Debian's Chromium, driven by Playwright (its async
API, in pytest's own event loop), against a real gateway server and both sandboxes, at a
phone's width. A screenshot of each page is kept under ``test-artifacts/screenshots/``.
Which browser, and when the test is skipped: tests/e2e/browser/conftest.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from gateway.runtime import Runtime
from gateway.services import connect
from gateway.services.context import Services
from gateway.settings import Settings
from tests.api.pages import pointed_at_sandboxes
from tests.conftest import Backend
from tests.e2e.browser.conftest import CHROMIUM_FLAGS, SCREENSHOTS
from tests.support import SandboxHandle, ServerThread

if TYPE_CHECKING:
    from playwright.async_api import ViewportSize

PHONE: ViewportSize = {"width": 360, "height": 780}
PNG = b"\x89PNG\r\n\x1a\n"
NAME = "Corner Café"
TIMEOUT_MS = 30_000


@pytest.fixture
def backend() -> Backend:
    """One store is enough here: tests/api/test_connect_page.py runs the flow on each."""
    return Backend("sqlite-memory", "", "memory://")


@pytest.fixture
def settings(
    settings: Settings, public_port: int, xseries: SandboxHandle, kounta: SandboxHandle
) -> Settings:
    return pointed_at_sandboxes(settings, f"http://127.0.0.1:{public_port}", xseries, kounta)


async def test_a_merchant_connects_both_pos_in_a_browser(
    chromium: str,
    runtime: Runtime,
    live: ServerThread,
    xseries: SandboxHandle,
    kounta: SandboxHandle,
    tmp_path: Path,
) -> None:
    from playwright.async_api import Page, async_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("connect-*.png"):
        old.unlink()
    taken: list[Path] = []

    async def shot(page: Page, name: str) -> None:
        path = SCREENSHOTS / f"connect-{len(taken) + 1:02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        taken.append(path)

    async def fits_a_phone(page: Page) -> None:
        """Nothing wider than the screen; every button big enough for a thumb."""
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width} px wide"
        for button in await page.locator("main .button, main button").all():
            box = await button.bounding_box()
            assert box is not None and box["height"] >= 44, box

    invitation = await connect.invite(Services(runtime), NAME)
    link = connect.link(runtime.settings, invitation)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport=PHONE,
        )
        try:
            page = browser.pages[0] if browser.pages else await browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(link)
            assert await page.locator("h1").inner_text() == f"Connect {NAME}"
            assert await page.locator("script").count() == 0
            await fits_a_phone(page)
            await shot(page, "link")

            await page.get_by_role("link", name="Connect X-Series").click()
            await page.wait_for_url(f"{xseries.url}/connect?**")
            await shot(page, "xseries-consent")
            await page.get_by_role("button", name="Approve").click()
            await page.wait_for_url(f"{link}?connected=xseries")
            assert "X-Series is connected." in await page.locator("main").inner_text()
            assert "CONNECTED" in await page.locator("#xseries").inner_text()
            await shot(page, "xseries-connected")

            await page.get_by_role("link", name="Connect Kounta").click()
            await page.wait_for_url(f"{kounta.url}/authorize?**")
            await shot(page, "kounta-consent")
            await page.get_by_role("button", name="Approve").click()
            await page.wait_for_url(f"{link}?connected=kounta")
            assert "CONNECTED" in await page.locator("#kounta").inner_text()
            addon = await page.locator("#kounta-addon").inner_text()
            assert f"{live.url}/kounta/test-addon-token/customer-search" in addon
            assert f"{live.url}/kounta/test-addon-token/reward-lookup" in addon
            await fits_a_phone(page)
            await shot(page, "both-connected")

            await page.get_by_role("button", name="Create an API key").click()
            await page.wait_for_url(f"{link}/api-key")
            assert "This key is shown once." in await page.locator("main").inner_text()
            key = (await page.locator("#api-key").inner_text()).strip()
            await shot(page, "api-key")
        finally:
            await browser.close()

    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{live.url}/graphql",
            json={"query": "{ merchant { name connections { pos status } } }"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert answer.status_code == 200, answer.text
    merchant = answer.json()["data"]["merchant"]
    assert merchant["name"] == NAME
    assert merchant["connections"] == [
        {"pos": "XSERIES", "status": "CONNECTED"},
        {"pos": "KOUNTA", "status": "CONNECTED"},
    ]

    assert [path.name for path in taken] == [
        "connect-01-link.png",
        "connect-02-xseries-consent.png",
        "connect-03-xseries-connected.png",
        "connect-04-kounta-consent.png",
        "connect-05-both-connected.png",
        "connect-06-api-key.png",
    ]
    for path in taken:
        data = path.read_bytes()
        assert len(data) > len(PNG) and data.startswith(PNG), path
