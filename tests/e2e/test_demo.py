"""``gateway demo`` end to end: a real process, its printed instructions followed as printed."""

from __future__ import annotations

import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.api.pages import Page, read_page
from tests.sandbox.consent import read_form
from tests.support import free_port

READY_TIMEOUT_S = 90


class Demo:
    def __init__(self, workdir: Path, **env_overrides: str) -> None:
        self.ports = {"port": free_port(), "xseries-port": free_port(), "kounta-port": free_port()}
        args = [f"--{name}={port}" for name, port in self.ports.items()]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **env_overrides}
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
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def stop(self) -> None:
        """Killed if still running, reaped, and its output pipe closed once read to the end."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()

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

    def exports(self) -> dict[str, str]:
        """The environment the banner says to export, as a shell would read it."""
        found: dict[str, str] = {}
        for line in self.output:
            if line.strip().startswith("export "):
                name, _, value = line.strip().removeprefix("export ").partition("=")
                found[name] = shlex.split(value)[0] if value else ""
        return found

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


def click_through_reconnect(link: str, label: str) -> Page:
    """What a newcomer does with the printed link: Reconnect, Approve at the sandbox, back."""
    with httpx.Client(timeout=30) as browser:
        start = browser.get(read_page(browser.get(link)).link(f"Reconnect {label}"))
        consent = browser.get(start.headers["location"])
        form = read_form(consent.text)
        decided = browser.post(urljoin(str(consent.url), form.action),
                               data=form.submission("approve"))  # fmt: skip
        back = browser.get(decided.headers["location"])
        assert back.status_code == 303, back.text
        return read_page(browser.get(urljoin(str(back.url), back.headers["location"])))


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    yield running
    running.stop()


def test_demo_serves_everything_and_stops_on_ctrl_c(demo: Demo) -> None:
    demo.wait_for("demo ready")
    gateway = demo.value("gateway")
    sandbox = demo.value("X-Series sandbox")
    assert gateway.endswith(f":{demo.ports['port']}")
    assert httpx.get(f"{gateway}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway}/readyz").status_code == 200
    assert sandbox.endswith(f":{demo.ports['xseries-port']}/api")
    assert demo.value("GraphiQL") == f"{gateway}/graphql"
    link = demo.value("connect link")
    assert link.startswith(f"{gateway}/connect/")
    page = httpx.get(link)
    assert page.status_code == 200
    assert "<h1>Connect Demo Store</h1>" in page.text
    assert "CONNECTED" in page.text and "Reconnect X-Series" in page.text
    assert "X-Series is connected." in click_through_reconnect(link, "X-Series").text
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


def test_demo_key_and_database_serve_every_other_command(demo: Demo, tmp_path: Path) -> None:
    """Finding 6: `gateway worker` (and any command) can be pointed at the demo's data."""
    demo.wait_for("demo ready")
    exports = demo.exports()
    assert set(exports) >= {"GATEWAY_DATABASE_URL", "GATEWAY_SECRET_KEY_FILE"}
    key_file = Path(exports["GATEWAY_SECRET_KEY_FILE"])
    assert key_file.parent == (tmp_path / ".gateway-demo").resolve()
    assert key_file.stat().st_mode & 0o077 == 0  # the owner's alone
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    worker = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "worker", "--once"],
        cwd=tmp_path, env={**env, **exports}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    assert "finished 0" in worker.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "merchants", "show", "Demo Store"],
        cwd=tmp_path, env={**env, **exports}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert (
        "Kounta search" in listed.stdout and exports["GATEWAY_KOUNTA_ADDON_TOKEN"] in listed.stdout
    )


def test_the_demo_runs_the_recovery_worker(tmp_path: Path) -> None:
    """Finding 6: a redemption whose payment answer was lost is settled by the demo itself
    (its points come back), with no other process running."""
    demo = Demo(tmp_path, GATEWAY_UPSTREAM_SETTLE_S="0", GATEWAY_WORKER_INTERVAL_S="0.2")
    try:
        demo.wait_for("demo ready")
        kounta = f"http://127.0.0.1:{demo.ports['kounta-port']}"
        xseries = f"http://127.0.0.1:{demo.ports['xseries-port']}"
        fault = {"status": 503, "fail_next": 1, "method": "POST",
                 "path": "/v1/companies/5678/orders/93824701/payments"}  # fmt: skip
        assert httpx.post(f"{kounta}/_sandbox/faults", json=fault).status_code == 200
        _, _, lookup, _ = demo.curl_commands()
        coffee = next(r for r in run_curl(lookup).json()["rewards"] if r["id"] == "free-coffee")
        redeem_url = coffee["redeem_url"].replace("order_id=111", "order_id=93824701")
        assert httpx.get(redeem_url).json()["success"] is False  # the answer was lost

        def points() -> str:
            customers = httpx.get(
                f"{xseries}/api/customers",
                params={"id": "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b04"},
                headers={"Authorization": "Bearer demo-xseries-token"},
            ).json()["customers"]
            return str(customers[0]["loyalty_balance"])

        ends = time.monotonic() + 30
        while Decimal(points()) != 120 and time.monotonic() < ends:
            time.sleep(0.1)  # polling a condition another process brings about
        assert Decimal(points()) == 120  # read back: not on the order; points given back
        assert "given back" in httpx.get(redeem_url).json()["error"]
    finally:
        demo.stop()
