"""``gateway demo`` end to end: a real process, its printed instructions followed as printed."""

from __future__ import annotations

import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

READY_TIMEOUT_S = 90


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.ports = {"port": free_port(), "xseries-port": free_port(), "kounta-port": free_port()}
        args = [f"--{name}={port}" for name, port in self.ports.items()]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "demo", *args],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text: str) -> list[str]:
        while True:
            line = self.lines.get(timeout=READY_TIMEOUT_S)
            if line is None:
                raise AssertionError("demo exited early:\n" + "\n".join(self.output))
            self.output.append(line)
            if text in line:
                return self.output

    def curl_commands(self) -> list[str]:
        return [line.strip() for line in self.output if line.strip().startswith("curl ")]

    def line_after(self, text: str) -> str:
        for n, line in enumerate(self.output):
            if text in line:
                return self.output[n + 1].strip()
        raise AssertionError(f"{text!r} not printed")

    def value(self, label: str) -> str:
        for line in self.output:
            if line.strip().startswith(label):
                return line.strip()[len(label) :].split()[0]
        raise AssertionError(f"{label!r} not printed:\n" + "\n".join(self.output))


def run_curl(command: str) -> httpx.Response:
    """Run a printed curl command (the subset the demo prints) with httpx."""
    args = shlex.split(command)[1:]
    headers: dict[str, str] = {}
    method, data, url = "GET", None, None
    while args:
        arg = args.pop(0)
        if arg == "-H":
            name, _, value = args.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data"):
            data, method = args.pop(0), "POST"
        elif arg == "-X":
            method = args.pop(0)
        elif arg in ("-s", "-S", "-sS"):
            continue
        else:
            url = arg
    assert url, command
    return httpx.request(method, url, headers=headers, content=data, timeout=30)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait(timeout=30)


def test_demo_serves_everything_and_stops_on_ctrl_c(demo: Demo) -> None:
    demo.wait_for("demo ready")
    gateway = demo.value("gateway")
    sandbox = demo.value("X-Series sandbox")
    assert gateway.endswith(f":{demo.ports['port']}")
    assert httpx.get(f"{gateway}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway}/readyz").status_code == 200
    assert sandbox.endswith(f":{demo.ports['xseries-port']}/api")
    assert demo.value("GraphiQL") == f"{gateway}/graphql"
    first_query, search, lookup, sandbox_config = demo.curl_commands()
    answer = run_curl(first_query).json()
    assert "errors" not in answer
    assert answer["data"]["merchant"]["name"] == "Demo Store"
    assert answer["data"]["merchant"]["posSystems"] == ["XSERIES", "KOUNTA"]
    tony = answer["data"]["customers"]
    assert [(t["firstName"], t["loyaltyBalance"]) for t in tony] == [("Tony", "50.00")]
    assert run_curl(sandbox_config).json()["config"]["retailer_name"] == "Stark Industries Store"
    assert demo.value("Kounta sandbox").endswith(f":{demo.ports['kounta-port']}/v1")

    members = run_curl(search).json()["members"]
    assert [m["first_name"] for m in members.values()] == ["John"]
    john = run_curl(lookup).json()
    assert john["current_points"] == "120.00"
    coffee = next(r for r in john["rewards"] if r["id"] == "free-coffee")
    assert any("order_id=93824701" in line for line in demo.output)  # where to redeem
    redeem_url = coffee["redeem_url"].replace("order_id=111", "order_id=93824701")
    assert httpx.get(redeem_url).json() == {"success": True}

    key = demo.value("API key")
    ide = httpx.get(f"{gateway}/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    mutation = demo.line_after("and pay 5 of Johnny Bravo")
    paid = httpx.post(
        f"{gateway}/graphql", json={"query": mutation}, headers={"Authorization": f"Bearer {key}"}
    ).json()["data"]["payWithLoyalty"]
    assert paid["__typename"] == "PayWithLoyaltySuccess"
    assert paid["payment"] == {"amount": "5.00", "balanceAfter": "7.00"}
    assert paid["sale"] == {"status": "ONACCOUNT", "amountDue": "13.00"}

    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=30) == 0
    demo.wait_for("demo stopped")


def test_demo_explains_a_busy_port(demo: Demo, tmp_path: Path) -> None:
    demo.wait_for("demo ready")
    second = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", f"--port={demo.ports['port']}",
         f"--xseries-port={free_port()}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert second.returncode == 1
    assert f"port {demo.ports['port']}" in second.stderr and "in use" in second.stderr
    assert "Traceback" not in second.stderr
