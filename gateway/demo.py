"""``gateway demo``: the sandboxes and the gateway in one process, seeded and explained.

Everything runs in one event loop (uvicorn servers side by side) on a fresh SQLite file
under ``.gateway-demo/``, with a secret key generated for the run. Ctrl-C stops it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer
import uvicorn
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Merchant, Pos
from gateway.runtime import Runtime
from gateway.sandbox import xseries as xseries_sandbox
from gateway.services.merchants import XSeriesCredentials, add_merchant
from gateway.settings import Environment, Settings
from gateway.store.api_keys import create_api_key

DEMO_DIR = Path(".gateway-demo")
DEMO_MERCHANT = "Demo Store"
XSERIES_TOKEN = "demo-xseries-token"  # noqa: S105 - the sandbox's own demo token, not a secret


@dataclass(frozen=True)
class DemoPorts:
    gateway: int = 8000
    xseries: int = 8101


class DemoError(Exception):
    pass


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the demo (several share a loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _serve(app: ASGIApp, host: str, port: int) -> _Server:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    return _Server(config)


def _check_free(host: str, port: int, flag: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise DemoError(
                f"port {port} on {host} is in use; choose another with {flag}"
            ) from None


def _fresh_workdir(workdir: Path) -> None:
    """A new database for every run: the demo always starts from the same story."""
    workdir.mkdir(exist_ok=True)
    for stale in workdir.glob("gateway.db*"):
        stale.unlink()


async def _wait_started(servers: list[_Server], tasks: list[asyncio.Task[None]]) -> None:
    while not all(server.started for server in servers):
        for task in tasks:
            if task.done():
                raise DemoError("a demo server failed to start (see the log above)")
        await asyncio.sleep(0.02)


def demo_settings(host: str, ports: DemoPorts, workdir: Path) -> Settings:
    return Settings(
        environment=Environment.DEVELOPMENT,
        database_url=f"sqlite+aiosqlite:///{workdir / 'gateway.db'}",
        secret_key=secrets.token_urlsafe(32),
        public_url=f"http://{host}:{ports.gateway}",
        log_json=False,
        log_level="WARNING",
    )


async def seed(runtime: Runtime, xseries_url: str) -> tuple[Merchant, str]:
    merchant = await add_merchant(
        runtime,
        name=DEMO_MERCHANT,
        xseries=XSeriesCredentials(xseries_url, XSERIES_TOKEN),
    )
    async with runtime.db.transaction() as session:
        key = await create_api_key(session, merchant.id)
    return merchant, key


async def run_demo(ports: DemoPorts, *, host: str = "127.0.0.1", workdir: Path = DEMO_DIR) -> None:
    _check_free(host, ports.gateway, "--port")
    _check_free(host, ports.xseries, "--xseries-port")
    _fresh_workdir(workdir)
    settings = demo_settings(host, ports, workdir)
    runtime = Runtime(settings)
    await runtime.db.migrate()

    xseries_url = f"http://{host}:{ports.xseries}"
    gateway_url = f"http://{host}:{ports.gateway}"
    servers = [
        _serve(xseries_sandbox.create_app(token=XSERIES_TOKEN), host, ports.xseries),
        _serve(create_app(runtime=runtime), host, ports.gateway),
    ]
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await _wait_started(servers, tasks)
        merchant, key = await seed(runtime, xseries_url)
        _print_banner(gateway_url, xseries_url, merchant, key)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        await runtime.aclose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        typer.echo("demo stopped")


FIRST_QUERY = (
    '{ merchant { name pointsLabel } customers(search: "Stark") '
    "{ id firstName lastName loyaltyBalance sales { status total amountDue } } }"
)


def _demo_sale_id() -> str:
    """Johnny Bravo's ON ACCOUNT T-shirt sale in the sandbox's demo data."""
    fixtures = json.loads(xseries_sandbox.DEMO_FIXTURES.read_text())
    return str(next(s["id"] for s in fixtures["register_sales"] if s["status"] == "ONACCOUNT"))


def _print_banner(gateway_url: str, xseries_url: str, merchant: Merchant, key: str) -> None:
    graphql = f"{gateway_url}/graphql"
    sale_id = ids.encode(Kind.SALE, Pos.XSERIES, merchant.id, _demo_sale_id())
    mutation = (
        f'mutation {{ payWithLoyalty(input: {{idempotencyKey: "demo-1", saleId: "{sale_id}", '
        'amount: "5"}) { __typename ... on PayWithLoyaltySuccess { payment { amount '
        "balanceAfter } sale { status amountDue } } ... on Error { code message } } }"
    )
    body = json.dumps({"query": FIRST_QUERY})
    lines = [
        "",
        "Lightspeed loyalty gateway: demo",
        f"  GraphiQL           {graphql}",
        f"  gateway            {gateway_url}  (health: {gateway_url}/healthz)",
        f"  X-Series sandbox   {xseries_url}/api  (token: {XSERIES_TOKEN})",
        f"  merchant           {merchant.name} ({merchant.id})",
        f"  API key            {key}",
        "",
        "In GraphiQL, paste this into Headers:",
        f'  {{"Authorization": "Bearer {key}"}}',
        "then run:",
        f"  {FIRST_QUERY}",
        "and pay 5 of Johnny Bravo's on-account T-shirt with his loyalty:",
        f"  {mutation}",
        "",
        "The same first query from a shell:",
        f"  curl -s {graphql} -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' -d '{body}'",
        "The X-Series sandbox directly:",
        f"  curl -H 'Authorization: Bearer {XSERIES_TOKEN}' {xseries_url}/api/config",
        "",
        "Ctrl-C stops everything.",
        "demo ready",
    ]
    typer.echo("\n".join(lines))
