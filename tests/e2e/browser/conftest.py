"""Debian's Chromium, driven by Playwright (its async API, in pytest's own event loop).

The browser is the system's (``/usr/bin/chromium``, or ``GATEWAY_TEST_CHROMIUM``); none is
ever downloaded. Without one a browser test is skipped, saying how to enable it, unless
``GATEWAY_TEST_BROWSER_REQUIRED=1`` (``.ci/run`` sets it): then it fails. Screenshots are
kept under ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium() -> str:
    """The Chromium binary; skip (or, where required, fail) saying how to get one. Asked
    for first, before any server starts."""
    path = os.environ.get("GATEWAY_TEST_CHROMIUM") or "/usr/bin/chromium"
    problem = None
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        problem = f"no Chromium at {path}"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "Playwright for Python is not installed (uv sync installs it)"
    if problem is None:
        return path
    message = (
        f"{problem}: install Debian's browser with `apt-get install chromium`, or set "
        "GATEWAY_TEST_CHROMIUM to a Chromium binary (a browser is never downloaded)"
    )
    if os.environ.get("GATEWAY_TEST_BROWSER_REQUIRED") == "1":
        pytest.fail(f"{message}; GATEWAY_TEST_BROWSER_REQUIRED=1 makes this a failure")
    pytest.skip(message)
