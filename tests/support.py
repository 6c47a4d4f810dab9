"""Test plumbing: real uvicorn servers in threads, and a handle on a sandbox's controls."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp


class ServerThread:
    """A real uvicorn server on a free loopback port, in its own thread and event loop."""

    def __init__(self, app: ASGIApp, *, lifespan: bool = False, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on" if lifespan else "off",
        )
        self._started = threading.Event()
        started = self._started

        class _Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                started.set()

        self.server = _Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        if not self._started.wait(timeout=30):
            raise RuntimeError("test server did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SandboxHandle:
    """Drives a sandbox's ``/_sandbox`` controls from a test (synchronously, it is local)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self._http = httpx.Client(base_url=url, timeout=10)

    def reset(self, fixtures: Mapping[str, Any] | None = None) -> None:
        response = self._http.post("/_sandbox/reset", json=fixtures) if fixtures else None
        if response is None:
            response = self._http.post("/_sandbox/reset")
        response.raise_for_status()

    def faults(self, **faults: Any) -> None:
        self._http.post("/_sandbox/faults", json=faults).raise_for_status()

    def clear_faults(self) -> None:
        self._http.delete("/_sandbox/faults").raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._http.get("/_sandbox/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def count(self, route: str) -> int:
        """Requests that reached the sandbox for ``"METHOD /route/template"``."""
        return int(self.stats()["requests"].get(route, 0))

    def get(self, path: str, **params: Any) -> Any:
        """Read the sandbox's state through its own API, as the POS back office would."""
        response = self._http.get(
            path, params=params, headers={"Authorization": f"Bearer {self.token}"}
        )
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> httpx.Response:
        return self._http.post(path, json=body, headers={"Authorization": f"Bearer {self.token}"})

    def close(self) -> None:
        self._http.close()


class ManualClock:
    """The gateway's clock for the settle window: moves only when a test says so, so a
    test proves what happens before and after the window without waiting it out."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def until(
    condition: Callable[[], bool | Awaitable[bool]], *, within_s: float = 10, what: str = ""
) -> None:
    """Wait for something another party does (a late write landing), looking every 20 ms;
    fail the test if it does not happen in time."""
    ends = time.monotonic() + within_s
    while True:
        outcome = condition()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        if time.monotonic() > ends:
            raise AssertionError(f"did not happen within {within_s} s: {what or condition}")
        await asyncio.sleep(0.02)
