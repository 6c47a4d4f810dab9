"""``gateway demo``: the sandboxes and the gateway in one process, seeded and explained.

Everything runs in one event loop (uvicorn servers side by side) on a fresh SQLite file
under ``.gateway-demo/``, with the recovery worker running inside the gateway as it does in
``gateway serve``. The secret key is kept in ``.gateway-demo/secret-key`` (made once, then
reused), so that ``gateway worker`` and every other command can be pointed at the demo's
database with the environment the banner prints. Ctrl-C stops it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shlex
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
import uvicorn
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Merchant, Pos
from gateway.domain.rewards import Reward, RewardKind
from gateway.runtime import Runtime
from gateway.sandbox import kounta as kounta_sandbox
from gateway.sandbox import xseries as xseries_sandbox
from gateway.services import connect, rewards
from gateway.services.context import Services
from gateway.services.merchants import KountaCredentials, XSeriesCredentials, add_merchant
from gateway.settings import Environment, Settings
from gateway.store.api_keys import create_api_key

DEMO_DIR = Path(".gateway-demo")
DEMO_MERCHANT = "Demo Store"
XSERIES_TOKEN = "demo-xseries-token"  # noqa: S105 - the sandbox's own demo token, not a secret
KOUNTA_COMPANY = "5678"
KOUNTA_LOYALTY_METHOD = "12"  # "Loyalty Points" in the Kounta sandbox's demo data
DEMO_REWARDS = [
    Reward("free-coffee", "Free coffee", RewardKind.PAYMENT, Decimal(40), Decimal("4.60"),
           terms="One regular Caffé Latte"),
    Reward("ten-percent-off", "10% off the order", RewardKind.PERCENT_DISCOUNT, Decimal(100),
           Decimal(10), terms="Every line of this order"),
]  # fmt: skip


@dataclass(frozen=True)
class DemoPorts:
    gateway: int = 8000
    xseries: int = 8101
    kounta: int = 8102


@dataclass(frozen=True)
class Seeded:
    merchant: Merchant
    key: str
    addon_token: str
    connect_link: str


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
            message = f"port {port} on {host} is in use; choose another with {flag}"
            raise DemoError(message) from None


def _fresh_workdir(workdir: Path) -> None:
    """A new database for every run: the demo always starts from the same story."""
    workdir.mkdir(exist_ok=True)
    for stale in workdir.glob("gateway.db*"):
        stale.unlink()


def _secret_key_file(workdir: Path) -> Path:
    """The demo's secret key, in its own directory, readable by its owner only."""
    path = workdir / "secret-key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
    return path


async def _wait_started(servers: list[_Server], tasks: list[asyncio.Task[None]]) -> None:
    while not all(server.started for server in servers):
        for task in tasks:
            if task.done():
                raise DemoError("a demo server failed to start (see the log above)")
        await asyncio.sleep(0.02)


def demo_settings(host: str, ports: DemoPorts, workdir: Path) -> Settings:
    """The demo's own settings; its POS are its sandboxes, OAuth included, so the connect
    link it prints goes through their consent pages."""
    workdir = workdir.resolve()
    xseries, kounta = f"http://{host}:{ports.xseries}", f"http://{host}:{ports.kounta}"
    return Settings(
        environment=Environment.DEVELOPMENT,
        database_url=f"sqlite+aiosqlite:///{workdir / 'gateway.db'}",
        secret_key=None,
        secret_key_file=_secret_key_file(workdir),
        kounta_addon_token=secrets.token_urlsafe(16),
        public_url=f"http://{host}:{ports.gateway}",
        xseries_connect_url=f"{xseries}/connect",
        xseries_api_url=xseries,  # no {domain_prefix}: the sandbox is every store
        kounta_authorize_url=f"{kounta}/authorize",
        kounta_api_url=kounta,
        log_json=False,
        log_level="WARNING",
        worker_in_process=True,
    )


def demo_environment(settings: Settings) -> dict[str, str]:
    """What makes every other command work on the demo's database and key."""
    addon = settings.kounta_addon_token
    return {
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_SECRET_KEY_FILE": str(settings.secret_key_file),
        "GATEWAY_KOUNTA_ADDON_TOKEN": addon.get_secret_value() if addon else "",
        "GATEWAY_PUBLIC_URL": settings.public_url or "",
    }


async def seed(services: Services, xseries_url: str, kounta_url: str) -> Seeded:
    kounta_tokens = json.loads(kounta_sandbox.DEMO_FIXTURES.read_text())["tokens"][0]
    merchant = await add_merchant(
        services,
        name=DEMO_MERCHANT,
        xseries=XSeriesCredentials(xseries_url, XSERIES_TOKEN),
        kounta=KountaCredentials(
            kounta_url,
            KOUNTA_COMPANY,
            kounta_tokens["access_token"],
            kounta_tokens["refresh_token"],
            KOUNTA_LOYALTY_METHOD,
        ),
    )
    scope = services.scope(merchant)
    for reward in DEMO_REWARDS:
        await rewards.add_reward(scope, reward)
    async with services.runtime.db.transaction() as session:
        key = await create_api_key(session, merchant.id)
    addon = services.runtime.settings.kounta_addon_token
    invitation = await connect.invite(services, DEMO_MERCHANT)
    link = connect.link(services.runtime.settings, invitation)
    return Seeded(merchant, key, addon.get_secret_value() if addon else "", link)


async def run_demo(ports: DemoPorts, *, host: str = "127.0.0.1", workdir: Path = DEMO_DIR) -> None:
    _check_free(host, ports.gateway, "--port")
    _check_free(host, ports.xseries, "--xseries-port")
    _check_free(host, ports.kounta, "--kounta-port")
    _fresh_workdir(workdir)
    settings = demo_settings(host, ports, workdir)
    runtime = Runtime(settings)
    await runtime.db.migrate()

    urls = {
        "gateway": f"http://{host}:{ports.gateway}",
        "xseries": f"http://{host}:{ports.xseries}",
        "kounta": f"http://{host}:{ports.kounta}",
    }
    servers = [
        _serve(xseries_sandbox.create_app(token=XSERIES_TOKEN), host, ports.xseries),
        _serve(kounta_sandbox.create_app(), host, ports.kounta),
        _serve(create_app(runtime=runtime), host, ports.gateway),
    ]
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await _wait_started(servers, tasks)
        seeded = await seed(Services(runtime), urls["xseries"], urls["kounta"])
        _print_banner(urls, seeded, demo_environment(settings))
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
    '{ merchant { name posSystems pointsLabel } customers(search: "Stark") '
    "{ id pos firstName lastName loyaltyBalance rewards { title available } "
    "sales { status total amountDue } } }"
)


def _fixture(fixtures: Path, kind: str, **match: str) -> dict[str, Any]:
    data = json.loads(fixtures.read_text())
    for item in data[kind]:
        if all(str(item.get(k)) == v for k, v in match.items()):
            return dict(item)
    raise DemoError(f"the demo fixtures have no {kind} with {match}")


def _print_banner(urls: dict[str, str], seeded: Seeded, environment: dict[str, str]) -> None:
    merchant, key, gateway_url = seeded.merchant, seeded.key, urls["gateway"]
    graphql = f"{gateway_url}/graphql"
    johnny_sale = _fixture(xseries_sandbox.DEMO_FIXTURES, "register_sales", status="ONACCOUNT")
    sale_id = ids.encode(Kind.SALE, Pos.XSERIES, merchant.id, johnny_sale["id"])
    mutation = (
        f'mutation {{ payWithLoyalty(input: {{idempotencyKey: "demo-1", saleId: "{sale_id}", '
        'amount: "5"}) { __typename ... on PayWithLoyaltySuccess { payment { amount '
        "balanceAfter } sale { status amountDue } } ... on Error { code message } } }"
    )
    john = _fixture(kounta_sandbox.DEMO_FIXTURES, "customers", first_name="John")
    order = _fixture(kounta_sandbox.DEMO_FIXTURES, "orders", status="ON_HOLD")
    kounta_base = f"{gateway_url}/kounta/{seeded.addon_token}"
    where = f"site_id=2301&company_id={KOUNTA_COMPANY}&order_id=111"
    body = json.dumps({"query": FIRST_QUERY})
    lines = [
        "",
        "Lightspeed loyalty gateway: demo",
        f"  GraphiQL           {graphql}",
        f"  gateway            {gateway_url}  (health: {gateway_url}/healthz)",
        f"  X-Series sandbox   {urls['xseries']}/api  (token: {XSERIES_TOKEN})",
        f"  Kounta sandbox     {urls['kounta']}/v1  (company {KOUNTA_COMPANY})",
        f"  merchant           {merchant.name} ({merchant.id}), points kept at X-Series",
        f"  API key            {key}",
        f"  connect link       {seeded.connect_link}",
        "    (the merchant's page: reconnect or disconnect each POS through the sandboxes'",
        "    consent pages, the Kounta add-on URLs, an API key)",
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
        "",
        "Kounta add-on, Loyalty tab:",
        f"  Customer Search URL  {kounta_base}/customer-search",
        f"  Rewards URL          {kounta_base}/reward-lookup",
        "What Kounta's POS calls, with curl:",
        f"  curl -s '{kounta_base}/customer-search?keyword=John%20Smith&{where}'",
        f"  curl -s '{kounta_base}/reward-lookup?customer_id={john['id']}"
        f"&reference_id={john['reference_id']}&{where}'",
        f"then call a redeem_url from that answer with order_id={order['id']} "
        "(John's open order) in place of 111.",
        "The X-Series sandbox directly:",
        f"  curl -H 'Authorization: Bearer {XSERIES_TOKEN}' {urls['xseries']}/api/config",
        "",
        "The recovery worker runs inside the gateway. To run `gateway worker --once`, or any",
        "other command, on the demo's database, set this environment first:",
        *(f"  export {name}={shlex.quote(value)}" for name, value in environment.items()),
        "",
        "Ctrl-C stops everything.",
        "demo ready",
    ]
    typer.echo("\n".join(lines))
