"""The processes under load: both sandboxes, the gateway and the bare ``{ hello }`` app.

Each is its own subprocess on loopback, so the load driver never shares a process (or a GIL)
with what it measures. The gateway runs as production does: ``gateway serve`` (one uvicorn
process), SQLite, the in-memory cache, ``GATEWAY_ENVIRONMENT=production``, log level WARNING,
and the recovery worker in its own process as the Procfile has it (here: not at all), so
that the sandboxes' counters hold only what requests caused. Sandbox rate budgets are lifted
so that the gateway, not a POS quota, is measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.scenarios import (
    ADDON,
    JOHN,
    JOHN_KOUNTA,
    KOUNTA_COMPANY,
    KOUNTA_TOKEN,
    MEMBERS,
    XSERIES_TOKEN,
    member,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "gateway" / "sandbox" / "fixtures"
# Enough points that no payment or redemption of a run is refused for want of them.
BALANCE = "100000000.00000"
UNLIMITED = {"limit": 100_000_000, "window_s": 60}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Sandbox:
    url: str
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def set_latency(self, latency_ms: int) -> None:
        faults = {"latency_ms": latency_ms, "rate_limit": UNLIMITED}
        httpx.post(f"{self.url}/_sandbox/faults", json=faults).raise_for_status()

    def stats(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/_sandbox/stats")
        answer.raise_for_status()
        stats: dict[str, Any] = answer.json()
        return stats


@dataclass
class Stack:
    env: dict[str, str]
    gateway: str
    hello: str
    xseries: Sandbox
    kounta: Sandbox
    log: Path
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    key: str = ""

    def gw(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout

    def start(
        self, name: str, *argv: str, announce: str | None = None, log: Path | None = None
    ) -> None:
        with contextlib.ExitStack() as files:
            # Never an unread pipe: a process that logs much would block on it.
            sink = files.enter_context(log.open("w")) if log else subprocess.DEVNULL
            process = subprocess.Popen(
                [sys.executable, *argv], env=self.env, cwd=ROOT,
                stdout=subprocess.PIPE if announce else sink, stderr=sink, text=True,
            )  # fmt: skip
        self.processes[name] = process
        if announce and process.stdout:
            line = process.stdout.readline()
            if announce not in line:
                raise RuntimeError(f"{name} did not start: {line!r}")

    def log_tail(self, lines: int = 20) -> list[str]:
        """The gateway's last log lines (WARNING and above): why requests failed."""
        if not self.log.exists():
            return []
        return self.log.read_text(errors="replace").splitlines()[-lines:]

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def sandboxes(self) -> tuple[Sandbox, Sandbox]:
        return self.xseries, self.kounta

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def rss_kib(pid: int) -> int:
    """VmRSS from /proc (Linux): what the process holds in memory now, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def _fixtures(workdir: Path) -> tuple[Path, Path]:
    """The demo's, every loyalty member rich, plus ``MEMBERS`` bench members (each like
    John: an X-Series customer and the Kounta customer linked to it)."""
    xseries = json.loads((FIXTURES / "xseries_demo.json").read_text())
    kounta = json.loads((FIXTURES / "kounta_demo.json").read_text())
    for customer in xseries["customers"]:
        if customer.get("enable_loyalty"):
            customer["loyalty_balance"] = BALANCE
    john = next(c for c in xseries["customers"] if c["id"] == JOHN)
    john_kounta = next(c for c in kounta["customers"] if str(c["id"]) == JOHN_KOUNTA)
    for index in range(MEMBERS):
        xseries_id, kounta_id = member(index)
        names = {"first_name": "Bench", "last_name": f"Member{index}"}
        xseries["customers"].append(john | names | {
            "id": xseries_id, "customer_code": f"BENCH{index}", "name": f"Bench Member{index}",
            "email": f"bench{index}@example.com"})  # fmt: skip
        kounta["customers"].append(john_kounta | names | {
            "id": int(kounta_id), "reference_id": xseries_id, "tags": [],
            "email": f"bench{index}@example.com", "phone": ""})  # fmt: skip
    paths = workdir / "xseries.json", workdir / "kounta.json"
    for path, data in zip(paths, (xseries, kounta), strict=True):
        path.write_text(json.dumps(data))
    return paths


def _wait(url: str, what: str, *, post: dict[str, Any] | None = None) -> None:
    for _ in range(400):
        try:
            answer = httpx.post(url, json=post) if post is not None else httpx.get(url)
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


def boot(workdir: Path) -> Stack:
    names = ("gateway", "hello", "xseries", "kounta")
    ports = {name: free_port() for name in names}
    url = {name: f"http://127.0.0.1:{ports[name]}" for name in names}
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "GATEWAY_CACHE_URL": "memory://",
        "GATEWAY_SECRET_KEY": secrets.token_urlsafe(32),
        "GATEWAY_KOUNTA_ADDON_TOKEN": ADDON,
        "GATEWAY_PUBLIC_URL": url["gateway"],
        "GATEWAY_ENVIRONMENT": "production",
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_WORKER_IN_PROCESS": "false",
    }
    stack = Stack(env, url["gateway"], url["hello"], Sandbox(url["xseries"], XSERIES_TOKEN),
                  Sandbox(url["kounta"], KOUNTA_TOKEN), workdir / "gateway.log")  # fmt: skip
    xseries_fixtures, kounta_fixtures = _fixtures(workdir)
    try:
        cli = ("-m", "gateway.cli")
        stack.start("xseries", *cli, "sandbox", "xseries", "--port", str(ports["xseries"]),
                    "--token", XSERIES_TOKEN, "--fixtures", str(xseries_fixtures),
                    announce="X-Series sandbox on")  # fmt: skip
        stack.start("kounta", *cli, "sandbox", "kounta", "--port", str(ports["kounta"]),
                    "--token", KOUNTA_TOKEN, "--fixtures", str(kounta_fixtures),
                    announce="Kounta sandbox on")  # fmt: skip
        for sandbox in stack.sandboxes():
            sandbox.set_latency(0)
        stack.gw("migrate")
        stack.gw("merchants", "add", "--name", "Bench", "--xseries-url", url["xseries"],
                 "--xseries-token", XSERIES_TOKEN, "--kounta-url", url["kounta"],
                 "--kounta-company-id", KOUNTA_COMPANY, "--kounta-access-token", KOUNTA_TOKEN,
                 "--kounta-payment-method-id", "12")  # fmt: skip
        stack.key = stack.gw("keys", "create", "--merchant", "Bench").strip().splitlines()[-1]
        stack.start("gateway", *cli, "serve", "--port", str(ports["gateway"]), log=stack.log)
        stack.start("hello", "-m", "bench.hello", "--port", str(ports["hello"]))
        _wait(f"{url['gateway']}/healthz", "the gateway")
        _wait(f"{url['hello']}/graphql", "the { hello } app", post={"query": "{ hello }"})
    except BaseException:
        stack.stop()
        raise
    return stack
