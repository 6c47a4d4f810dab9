"""Load the gateway the way its callers do, and print what it sustains.

    uv run python bench/run.py [--duration 10] [--concurrency 16] [--scenario NAME ...]

The X-Series and Kounta sandboxes and the gateway (``gateway serve``, one uvicorn
process, SQLite, in-memory cache) run as separate processes on loopback, seeded like the
demo; this process drives them with httpx and reports throughput and latency per
scenario. Sandbox rate budgets are lifted so that the gateway, not the POS quota, is
measured. Numbers depend on the machine: compare runs on the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
XSERIES_TOKEN = "bench-xseries"  # noqa: S105 - sandbox tokens, made up for the run
KOUNTA_TOKEN = "bench-kounta"  # noqa: S105
ADDON = "bench-addon"
TONY = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b01"
JOHN = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b04"
TSHIRT = "b8ca3a65-0183-11e4-fbb5-6ba391393b01"
WATCH = "b8ca3a65-0183-11e4-fbb5-6ba391393b03"
GST = "0adfd74a-153e-11e9-fa42-67b5781c0300"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    env: dict[str, str]
    gateway: str
    xseries: str
    kounta: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    key: str = ""

    def gw(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            env=self.env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout

    def start(self, *args: str, announce: str | None) -> None:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", *args], env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.processes.append(process)
        if announce and process.stdout:
            line = process.stdout.readline()
            assert announce in line, line

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)


def boot(workdir: Path) -> Stack:
    ports = {name: free_port() for name in ("gateway", "xseries", "kounta")}
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "GATEWAY_SECRET_KEY": secrets.token_urlsafe(32),
        "GATEWAY_KOUNTA_ADDON_TOKEN": ADDON,
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{ports['gateway']}",
        "GATEWAY_ENVIRONMENT": "production",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    stack = Stack(env, *(f"http://127.0.0.1:{ports[n]}" for n in ("gateway", "xseries", "kounta")))
    stack.start("sandbox", "xseries", "--port", str(ports["xseries"]), "--token", XSERIES_TOKEN,
                announce="X-Series sandbox on")  # fmt: skip
    stack.start("sandbox", "kounta", "--port", str(ports["kounta"]), "--token", KOUNTA_TOKEN,
                announce="Kounta sandbox on")  # fmt: skip
    unlimited = {"rate_limit": {"limit": 10_000_000, "window_s": 60}}
    for sandbox in (stack.xseries, stack.kounta):
        httpx.post(f"{sandbox}/_sandbox/faults", json=unlimited).raise_for_status()
    stack.gw("migrate")
    stack.gw("merchants", "add", "--name", "Bench", "--xseries-url", stack.xseries,
             "--xseries-token", XSERIES_TOKEN, "--kounta-url", stack.kounta,
             "--kounta-company-id", "5678", "--kounta-access-token", KOUNTA_TOKEN,
             "--kounta-payment-method-id", "12")  # fmt: skip
    stack.key = stack.gw("keys", "create", "--merchant", "Bench").strip().splitlines()[-1]
    stack.start("serve", "--port", str(ports["gateway"]), announce=None)
    for _ in range(200):
        try:
            if httpx.get(f"{stack.gateway}/healthz").status_code == 200:
                return stack
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the gateway did not start")


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    """One request, repeated: what a caller sends, as data both drivers can use."""

    method: str
    path: str
    body: dict[str, Any] | None = None


def graphql(query: str, variables: dict[str, Any] | None = None) -> Scenario:
    return Scenario("POST", "/graphql", {"query": query, "variables": variables or {}})


def customer_id(merchant_id: str, pos_id: str) -> str:
    import base64

    raw = f"g1|Customer|XSERIES|{merchant_id}|{pos_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def scenarios(merchant_id: str) -> dict[str, Scenario]:
    quote_lines = [
        {"productId": TSHIRT, "quantity": "2", "price": "20", "tax": "3", "taxId": GST},
        {"productId": WATCH, "quantity": "1", "price": "1000", "tax": "150", "taxId": GST},
    ]
    tony = customer_id(merchant_id, TONY)
    kounta_where = "site_id=2301&company_id=5678&order_id=111"
    return {
        # Auth, the cached account config, a Strawberry round trip: the gateway's own cost.
        "merchant": graphql("{ merchant { name pointsLabel loyaltyEnabled loyaltyRatio } }"),
        # A quote without a customer: no upstream call at all once caches are warm.
        "quote-anonymous": graphql(
            "query($i: LoyaltyQuoteInput!) { loyaltyQuote(input: $i) { loyaltyEarned total } }",
            {"i": {"lines": quote_lines}},
        ),
        # Cached products and config; the customer read fresh from X-Series.
        "quote": graphql(
            "query($i: LoyaltyQuoteInput!) { loyaltyQuote(input: $i) { loyaltyEarned } }",
            {"i": {"customerId": tony, "lines": quote_lines}},
        ),
        # Both POS at once: three X-Series searches and the cached Kounta directory.
        "search": graphql('{ customers(search: "Stark") { id firstName loyaltyBalance } }'),
        # Kounta's reward lookup: member from X-Series, catalogue, signed offers.
        "kounta-lookup": Scenario(
            "GET",
            f"/kounta/{ADDON}/reward-lookup?customer_id=3842&reference_id={JOHN}&{kounta_where}",
        ),
    }


def ok(status: int, body: str) -> bool:
    return status == 200 and '"errors"' not in body and '"error"' not in body


@dataclass
class Result:
    name: str
    latencies: list[float]
    errors: int
    seconds: float

    def row(self) -> str:
        done = len(self.latencies)
        ordered = sorted(self.latencies) or [0.0]

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

        median = statistics.median(ordered) * 1000
        return (f"{self.name:<16} {done:>7} {done / self.seconds:>9.0f} {median:>8.1f}"
                f" {pct(0.95):>8.1f} {pct(0.99):>8.1f} {self.errors:>7}")  # fmt: skip


async def drive(
    base: str, key: str, name: str, scenario: Scenario, seconds: float, concurrency: int
) -> Result:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    client = httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30)
    async with client:

        async def call() -> httpx.Response:
            return await client.request(scenario.method, scenario.path, json=scenario.body)

        for _ in range(20):  # warm caches and connections
            response = await call()
            assert ok(response.status_code, response.text), response.text

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await call()
                elapsed = time.perf_counter() - started
                if ok(response.status_code, response.text):
                    latencies.append(elapsed)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(name, latencies, errors, time.perf_counter() - started)


def wrk(
    base: str, key: str, name: str, scenario: Scenario, seconds: float, concurrency: int
) -> str:
    """The same scenario from wrk (C, its own process): the gateway's limit, not httpx's."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    lua = [f'wrk.method = "{scenario.method}"']
    lua += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if scenario.body is not None:
        lua.append(f"wrk.body = {json.dumps(json.dumps(scenario.body))}")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lua) + "\n")
    threads = max(1, min(2, concurrency))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds:.0f}s", "--latency", "-s",
         script.name, base + scenario.path],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)
    rps = next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec"))
    pct = {line.split()[0]: line.split()[1] for line in out.splitlines()
           if line.strip().startswith(("50%", "90%", "99%"))}  # fmt: skip
    bad = next((line.strip() for line in out.splitlines() if "Non-2xx" in line), "")
    return (f"{name:<16} {float(rps):>9.0f} {pct.get('50%', '?'):>9} {pct.get('90%', '?'):>9}"
            f" {pct.get('99%', '?'):>9}  {bad}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--scenario", action="append", help="run only these (repeatable)")
    parser.add_argument("--wrk", action="store_true", help="drive with wrk instead of httpx")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        stack = boot(Path(workdir))
        try:
            merchant_id = json.loads(httpx.post(
                f"{stack.gateway}/graphql", json={"query": "{ merchant { id } }"},
                headers={"Authorization": f"Bearer {stack.key}"},
            ).text)["data"]["merchant"]["id"]  # fmt: skip
            chosen = scenarios(merchant_id)
            names = args.scenario or list(chosen)
            if args.wrk:
                print(f"{'scenario':<16} {'req/s':>9} {'p50':>9} {'p90':>9} {'p99':>9}")
                for name in names:
                    row = wrk(stack.gateway, stack.key, name, chosen[name], args.duration,
                              args.concurrency)  # fmt: skip
                    print(row, flush=True)
            else:
                columns = ("requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors")
                widths = (7, 9, 8, 8, 8, 7)
                header = " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
                print(f"{'scenario':<16} {header}")
                for name in names:
                    run = drive(stack.gateway, stack.key, name, chosen[name], args.duration,
                                args.concurrency)  # fmt: skip
                    print(asyncio.run(run).row(), flush=True)
        finally:
            stack.stop()
    argv = ["uv", "run", "python", "bench/run.py", *sys.argv[1:]]
    command = " ".join(shlex.quote(a) for a in argv)
    driver = "wrk" if args.wrk else "httpx"
    print(f"\nreproduce: {command}  (driver {driver}; one gateway process, SQLite, memory cache, "
          f"sandboxes on loopback; {os.cpu_count()} CPUs; run at "
          f"{time.strftime('%Y-%m-%d %H:%M')})")  # fmt: skip


if __name__ == "__main__":
    main()
