"""Fixtures for the sandbox tests: an injected clock and sleep, so no test ever waits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette

from gateway.sandbox.xseries import create_app

TOKEN = "test-token"
START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC).timestamp()


class FakeClock:
    """Seconds since the epoch that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """Stands in for asyncio.sleep: remembers each delay instead of waiting it out."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def app(clock: FakeClock, sleeps: RecordingSleep) -> Starlette:
    return create_app(token=TOKEN, clock=clock, sleep=sleeps)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client
