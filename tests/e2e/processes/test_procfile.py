"""The Procfile as an operator runs it, with honcho, on a fresh SQLite database and the
X-Series sandbox: ``honcho start release`` migrates (and exits, which ends that honcho),
then ``honcho start web worker``: ``web`` answers ``/readyz`` and ``worker`` runs its pass
(reconciliation writes the merchant's checkpoint). The sequence is the README's
("Deployment"); a plain ``honcho start`` would stop web and worker as soon as release exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.conftest import XSERIES_TOKEN, Backend
from tests.support import SandboxHandle, free_port, run_gateway

ROOT = Path(__file__).resolve().parents[3]
WITHIN_S = 60.0
STOP_WITHIN_S = 20.0


@pytest.fixture
def backend() -> Backend:
    """A fresh SQLite file: what ``release`` is first run on."""
    return Backend("sqlite-memory", "", "memory://")


@dataclass
class Honcho:
    """One ``honcho start`` in a process group of its own; its output in a file (a pipe
    nobody reads would fill up and stall it)."""

    process: subprocess.Popen[str]
    output: IO[str]

    def text(self) -> str:
        self.output.flush()
        self.output.seek(0)
        return self.output.read()

    def children(self) -> list[int]:
        """The processes honcho started, each in its own session (honcho's own doing)."""
        return [int(pid) for pid in re.findall(r"started \(pid=(\d+)\)", self.text())]


def honcho(env: dict[str, str], log: Path, *processes: str) -> Honcho:
    output = log.open("w+")
    command = [str(Path(sys.executable).parent / "honcho"), "start", "--no-colour",
               "--procfile", str(ROOT / "Procfile"), "--env", str(log.with_suffix(".env")),
               *processes]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    return Honcho(process, output)


def stop(started: Honcho) -> None:
    """SIGTERM, as an operator's Ctrl-C or a supervisor would; honcho passes it on and
    waits. Whatever is left after that is killed, group by group."""
    if started.process.poll() is None:
        started.process.send_signal(signal.SIGTERM)
    try:
        started.process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        for group in [started.process.pid, *started.children()]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        started.process.wait(timeout=STOP_WITHIN_S)
    started.output.close()


@pytest.fixture
def environment(process_env: dict[str, str]) -> dict[str, str]:
    """The operator's shell: the settings, ``PORT`` for web, the gateway on ``PATH``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    path = f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}"
    return {**clean, **process_env, "PATH": path, "PORT": str(free_port()),
            "GATEWAY_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}  # fmt: skip


@pytest.fixture
def running() -> Iterator[list[Honcho]]:
    started: list[Honcho] = []
    yield started
    for each in started:
        stop(each)


def is_migrated(settings: Settings) -> bool:
    async def check() -> bool:
        runtime = Runtime(settings)
        try:
            return await runtime.db.is_current()
        finally:
            await runtime.aclose()

    return asyncio.run(check())


def checkpoints(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT merchant_id, pos FROM sync_checkpoints").fetchall()
    return [(str(merchant), str(pos)) for merchant, pos in rows]


def test_release_migrates_then_web_answers_and_the_worker_runs_a_pass(
    settings: Settings,
    environment: dict[str, str],
    xseries: SandboxHandle,
    running: list[Honcho],
    tmp_path: Path,
) -> None:
    database = tmp_path / "gateway.db"
    assert settings.database_url.endswith(str(database)) and not database.exists()

    release = honcho(environment, tmp_path / "release.log", "release")
    running.append(release)
    assert release.process.wait(timeout=WITHIN_S) == 0, release.text()
    assert "database is at the newest schema" in release.text()
    assert is_migrated(settings)

    added = run_gateway(environment, "merchants", "add", "--name", "Procfile Shop",
                        "--xseries-url", xseries.url, "--xseries-token", XSERIES_TOKEN)  # fmt: skip
    merchant_id = re.search(r"\(([^)]+)\)", added)
    assert merchant_id is not None, added
    assert checkpoints(database) == []

    app = honcho(environment, tmp_path / "app.log", "web", "worker")
    running.append(app)
    ready = f"http://127.0.0.1:{environment['PORT']}/readyz"
    answer: httpx.Response | None = None
    passed: list[tuple[str, str]] = []
    ends = time.monotonic() + WITHIN_S
    while time.monotonic() < ends and not (answer and passed):
        assert app.process.poll() is None, f"honcho stopped:\n{app.text()}"
        if answer is None or answer.status_code != 200:
            try:
                answer = httpx.get(ready, timeout=1)
            except httpx.TransportError:
                answer = None
        passed = checkpoints(database)
        time.sleep(0.1)  # polling processes that are starting
    assert answer is not None and answer.status_code == 200, app.text()
    assert answer.json()["status"] == "ready"
    assert passed == [(merchant_id.group(1), "XSERIES")], app.text()
    worker_lines = [line for line in app.text().splitlines() if " worker.1 " in line]
    assert any("reconciled" in line for line in worker_lines), app.text()
    assert app.process.poll() is None, app.text()  # both still running
