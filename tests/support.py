"""Test plumbing: real uvicorn servers in threads, and a handle on a sandbox's controls."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
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

    def scopes(self, scopes: str) -> None:
        """What the X-Series sandbox's tokens may do, space-separated, until its next reset."""
        self._http.post("/_sandbox/scopes", json={"scopes": scopes}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._http.get("/_sandbox/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def clear_stats(self) -> None:
        """Count from here on (the state is kept)."""
        self._http.delete("/_sandbox/stats").raise_for_status()

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


@contextmanager
def sandbox_process(which: str, port: int, *flags: str) -> Iterator[str]:
    """``gateway sandbox WHICH`` as a process of its own; yields the line it announces itself
    with. Its output pipe is closed and the process reaped however the test ends."""
    command = [sys.executable, "-m", "gateway.cli", "sandbox", which, "--port", str(port)]
    with subprocess.Popen(
        [*command, *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        try:
            assert process.stdout is not None
            yield process.stdout.readline().strip()
        finally:
            process.terminate()
            process.wait(timeout=30)


class GatewayProcess:
    """``gateway serve`` as a real process of its own (so it can crash, or run beside
    another on one database), on a free port, with ``env`` on top of a clean environment."""

    def __init__(self, env: Mapping[str, str], *, port: int | None = None) -> None:
        import os
        import tempfile

        self.port = port or free_port()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        self.env = {**clean, "PYTHONUNBUFFERED": "1", **env}
        # A pipe nobody reads would fill up and stall the server; closed in stop().
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", f"--port={self.port}"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            text=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, within_s: float = 60) -> GatewayProcess:
        ends = time.monotonic() + within_s
        while time.monotonic() < ends:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited early: {self.stderr()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling a process that is starting
        raise RuntimeError("gateway did not become ready")

    def wait_exit(self, within_s: float = 30) -> int:
        return self.process.wait(timeout=within_s)

    def stderr(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except Exception:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()


def run_gateway(env: Mapping[str, str], *args: str, within_s: float = 120) -> str:
    """A ``gateway`` command in its own process; its stdout (it must succeed)."""
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**clean, **env}, capture_output=True, text=True, timeout=within_s, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"gateway {' '.join(args)} failed: {done.stderr}"
    return done.stdout
