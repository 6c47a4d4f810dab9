"""The ``gateway`` command (README, "The gateway command"). Thin: parse, call a service, print.

Expected failures print ``error: <message>`` on stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
import uvicorn

from gateway.domain.errors import GatewayError
from gateway.domain.merchant import ConnectionStatus, Merchant, PointsSource, Pos, VoidPolicy
from gateway.observability import configure_logging
from gateway.runtime import Runtime
from gateway.sandbox.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from gateway.settings import MissingSecretKey, Settings
from gateway.store import api_keys as key_store
from gateway.store import merchants as merchant_store
from gateway.store.crypto import UndecryptableToken

if TYPE_CHECKING:
    from gateway.services.doctor import Report

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
sandbox_app = typer.Typer(no_args_is_help=True, help="Run a POS simulator.")
merchants_app = typer.Typer(no_args_is_help=True, help="Manage merchants.")
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
rewards_app = typer.Typer(no_args_is_help=True, help="Manage reward catalogues.")
points_app = typer.Typer(no_args_is_help=True, help="Customers' points.")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(merchants_app, name="merchants")
app.add_typer(keys_app, name="keys")
app.add_typer(rewards_app, name="rewards")
app.add_typer(points_app, name="points")


@app.callback()
def _setup() -> None:
    """Logs for every command: JSON on stderr at GATEWAY_LOG_LEVEL (secrets redacted)."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)


class PosChoice(StrEnum):
    XSERIES = "xseries"
    KOUNTA = "kounta"


class VoidChoice(StrEnum):
    RETURN = "return"
    KEEP = "keep"


class RewardChoice(StrEnum):
    PAYMENT = "payment"
    PERCENT_DISCOUNT = "percent-discount"


Host = Annotated[str, typer.Option(help="Interface to listen on.")]


class CliError(Exception):
    pass


EXPECTED = (CliError, GatewayError, MissingSecretKey, UndecryptableToken)


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def main() -> None:
    app()


def _run(work: Callable[[Runtime], Awaitable[T]], *, migrated: bool = True) -> T:
    """Run a command's async work on a runtime; expected failures end it with a message."""

    async def runner() -> T:
        runtime = Runtime(Settings())
        try:
            if migrated and not await runtime.db.is_current():
                raise CliError("the database is not migrated: run `gateway migrate` first")
            return await work(runtime)
        finally:
            await runtime.aclose()

    try:
        return asyncio.run(runner())
    except EXPECTED as exc:
        fail(str(exc))


# --------------------------------------------------------------------------- sandboxes


Fixtures = Annotated[Path | None, typer.Option(help="JSON fixtures in the API's own shapes.")]
Latency = Annotated[int, typer.Option(help="Delay added to every API response.")]
ClientId = Annotated[
    str, typer.Option(help="The OAuth app it knows (default: the gateway's development one).")
]
ClientSecret = Annotated[str, typer.Option(help="That app's client secret.")]
TokenLifetime = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Seconds the access tokens it issues live (default: X-Series 86400, Kounta 3600).",
    ),
]
RedirectUris = Annotated[
    list[str] | None,
    typer.Option(
        "--redirect-uri",
        help="A redirect URI the app registered; repeat for more (default: any absolute URL).",
    ),
]


def _oauth_options(
    client_id: str, client_secret: str, lifetime_s: int | None, redirect_uris: list[str] | None
) -> dict[str, Any]:
    """The OAuth app a sandbox knows, for its ``create_app``; a lifetime left out keeps the
    sandbox's own default."""
    options: dict[str, Any] = {
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uris": redirect_uris or None,
    }
    if lifetime_s is not None:
        options["token_lifetime_s"] = lifetime_s
    return options


@sandbox_app.command("xseries")
def sandbox_xseries(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8101,
    host: Host = "127.0.0.1",
    fixtures: Fixtures = None,
    latency_ms: Latency = 0,
    token: Annotated[
        str | None,
        typer.Option(
            help="A static (personal) token; then only it and the tokens issued through OAuth "
            "are accepted (default: any token it did not issue)."
        ),
    ] = None,
    scopes: Annotated[
        str | None,
        typer.Option(
            help="What the personal token may do, and the most any token may, space-separated, "
            'e.g. "customers:read sales:read" (default: all; a route without its scope '
            "answers 403)."
        ),
    ] = None,
    client_id: ClientId = DEFAULT_CLIENT_ID,
    client_secret: ClientSecret = DEFAULT_CLIENT_SECRET,
    token_lifetime_s: TokenLifetime = None,
    redirect_uri: RedirectUris = None,
) -> None:
    """Lightspeed Retail X-Series (0.9 API and webhooks, 2.0 search, 2026-07 loyalty
    adjustments, OAuth at /connect and /api/1.0/token)."""
    from gateway.sandbox import xseries

    try:
        granted = xseries.parse_scopes(scopes)
    except ValueError as exc:
        fail(f"--scopes: {exc}")
    oauth = _oauth_options(client_id, client_secret, token_lifetime_s, redirect_uri)
    _run_sandbox(
        xseries, "X-Series", "/api", host, port, fixtures, token, latency_ms, scopes=granted,
        **oauth,
    )  # fmt: skip


@sandbox_app.command("kounta")
def sandbox_kounta(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8102,
    host: Host = "127.0.0.1",
    fixtures: Fixtures = None,
    latency_ms: Latency = 0,
    token: Annotated[
        str | None, typer.Option(help="A static access token that is always valid.")
    ] = None,
    client_id: ClientId = DEFAULT_CLIENT_ID,
    client_secret: ClientSecret = DEFAULT_CLIENT_SECRET,
    token_lifetime_s: TokenLifetime = None,
    redirect_uri: RedirectUris = None,
) -> None:
    """Kounta (https://api.kounta.com/v1): OAuth2 (consent at /authorize, /v1/token),
    customers, orders, payments, webhooks."""
    from gateway.sandbox import kounta

    oauth = _oauth_options(client_id, client_secret, token_lifetime_s, redirect_uri)
    _run_sandbox(kounta, "Kounta", "/v1", host, port, fixtures, token, latency_ms, **oauth)


def _run_sandbox(
    module: Any,
    name: str,
    base: str,
    host: str,
    port: int,
    fixtures: Path | None,
    token: str | None,
    latency_ms: int,
    **options: Any,
) -> None:
    """Load the fixtures (a bad file is a clear error), serve, announce once listening.
    ``options``: the rest of the sandbox's ``create_app`` (its OAuth app, X-Series' scopes)."""
    try:
        data = module.load_fixtures(fixtures) if fixtures else None
    except module.FixtureError as exc:
        fail(str(exc))
    try:
        sandbox = module.create_app(data, token=token, latency_ms=latency_ms, **options)
    except ValueError as exc:  # a redirect URI that is not an absolute URL
        fail(str(exc))

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                typer.echo(f"{name} sandbox on http://{host}:{port}{base}")

    config = uvicorn.Config(sandbox, host=host, port=port, log_level="warning", access_log=False)
    Server(config).run()


# --------------------------------------------------------------------------- gateway


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Host = "127.0.0.1",
) -> None:
    """Serve the gateway (GraphQL, Kounta adapters, webhooks, health)."""
    from gateway.app import create_app

    uvicorn.run(create_app(Settings()), host=host, port=port, access_log=False)


@app.command()
def worker(
    interval: Annotated[float, typer.Option(help="Seconds between passes.")] = 30.0,
    once: Annotated[bool, typer.Option(help="One pass, then exit.")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this worker's /metrics on this port (docs/metrics.md)."),
    ] = None,
    host: Host = "127.0.0.1",
) -> None:
    """Finish or undo what crashes and outages left half-done (unsettled POS writes,
    interrupted redemptions and payments, earnings Kounta must not lose), and reconcile
    each POS for the webhooks that never came (``--once``: one full pass of both)."""
    from gateway.services.context import Services
    from gateway.services.recovery import recover_once, run

    async def work(runtime: Runtime) -> None:
        services = Services(runtime)
        if metrics_port is not None:
            # The worker's own figures (its lag, what it found unsettled, connections)
            # exist only in its process: a web process running no worker cannot tell them.
            from prometheus_client import start_http_server

            from gateway.metrics import REGISTRY

            start_http_server(metrics_port, addr=host, registry=REGISTRY)
        if not once:
            await run(services, interval, asyncio.Event())
            return
        report = await recover_once(services, reconcile=True, progress=_progress)
        typer.echo(f"finished {len(report.finished)}, still failing "
                   f"{len(report.still_failing)}, left for the caller's retry "
                   f"{len(report.left_for_retry)}")  # fmt: skip
        for done in report.reconciled:
            state = "skipped: another worker is on it" if done.skipped else (
                f"looked at {done.looked_at}, failed {len(done.failed)}")  # fmt: skip
            typer.echo(f"reconciled {done.merchant} {done.pos.label} since "
                       f"{done.since:%Y-%m-%d %H:%M:%S} UTC: {state}")  # fmt: skip

    with contextlib.suppress(KeyboardInterrupt):
        _run(work)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""

    async def work(runtime: Runtime) -> None:
        _progress("migrating the database to the newest schema")
        await runtime.db.migrate()

    _run(work, migrated=False)
    typer.echo("database is at the newest schema")


@app.command("rotate-secret")
def rotate_secret() -> None:
    """Re-encrypt every stored POS secret under GATEWAY_SECRET_KEY, readable until then
    with a key in GATEWAY_PREVIOUS_SECRET_KEYS (docs/operations.md, "Rotating
    GATEWAY_SECRET_KEY"). Safe while the gateway serves, and to run again."""
    from gateway.services.rotate_secret import rotate_secret as rotate
    from gateway.store.rotation import Credential, Rekeyed

    def progress(credential: Credential, done: Rekeyed | None) -> None:
        state = (
            "UNREADABLE with every configured key"
            if done is None
            else f"{done.rotated} re-encrypted, {done.current} already current"
        )
        typer.echo(f"{credential.merchant} {Pos(credential.pos).label}: {state}")

    report = _run(lambda runtime: rotate(runtime, progress))
    typer.echo(
        f"{report.connections} connections: {report.rotated} secrets re-encrypted, "
        f"{report.current} already under the current key"
    )
    if report.unreadable:
        fail(
            f"{len(report.unreadable)} connections hold a secret no configured key reads: "
            "add the key they were stored with to GATEWAY_PREVIOUS_SECRET_KEYS and run again"
        )
    typer.echo("nothing stored needs a previous key now: GATEWAY_PREVIOUS_SECRET_KEYS may go")


@app.command()
def doctor(
    merchant: Annotated[
        str | None, typer.Option(help="Check only this merchant's POS (default: every one).")
    ] = None,
    fix: Annotated[
        bool, typer.Option(help="Register the gateway's missing webhooks at each POS.")
    ] = False,
) -> None:
    """Check settings, database, cache, worker and each merchant's POS connections; print a
    row per check with a fix for each problem. Exit 1 when a check FAILs (warnings alone
    exit 0). Progress goes to stderr."""
    from gateway.services.doctor import UnknownMerchant, diagnose

    async def runner() -> Report:
        runtime = Runtime(Settings())
        try:
            return await diagnose(runtime, merchant=merchant, fix_webhooks=fix, progress=_progress)
        finally:
            await runtime.aclose()

    try:
        report = asyncio.run(runner())
    except UnknownMerchant as exc:
        fail(str(exc))
    _render(report)
    if report.failed:
        raise typer.Exit(1)


def _progress(message: str) -> None:
    typer.echo(f"… {message}", err=True)


def _render(report: Report) -> None:
    """A table, the fix column only when something needs one. Every cell is plain text
    (a POS's message in square brackets is not markup)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from gateway.services.doctor import Status

    styles = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red"}
    columns = 5 if any(check.fix for check in report.checks) else 4
    table = Table(header_style="bold")
    for column in ("subject", "check", "status", "found", "fix")[:columns]:
        table.add_column(column, overflow="fold")
    for check in report.checks:
        status = Text(check.status.value, style=styles[check.status])
        cells = [Text(check.subject), Text(check.check), status, Text(check.detail),
                 Text(check.fix or "")]  # fmt: skip
        table.add_row(*cells[:columns])
    # Piped (a log, a test): no wrapping, one line per row, whatever its length.
    console = Console(width=None if sys.stdout.isatty() else 1000)
    console.print(table)
    failed = sum(1 for c in report.checks if c.status is Status.FAIL)
    warned = sum(1 for c in report.checks if c.status is Status.WARN)
    verdict = "needs attention" if failed else "ok"
    console.print(f"{verdict}: {failed} failed, {warned} warnings, {len(report.checks)} checks")


@app.command("export-schema")
def export_schema(
    output: Annotated[Path, typer.Option(help="Where to write the SDL.")] = Path(
        "schema/schema.graphql"
    ),
    kounta_output: Annotated[
        Path, typer.Option(help="Where to write the Kounta URLs' OpenAPI document.")
    ] = Path("schema/kounta-adapters.openapi.json"),
) -> None:
    """Write the published contracts: the GraphQL schema (SDL) that frontends generate code
    from, and the OpenAPI document of the URLs Kounta's POS calls."""
    from gateway.api.graphql.schema import schema_sdl
    from gateway.api.kounta_openapi import document_text

    for path, text in ((output, schema_sdl()), (kounta_output, document_text())):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        typer.echo(f"wrote {path}")


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Gateway port.")] = 8000,
    xseries_port: Annotated[int, typer.Option(help="X-Series sandbox port.")] = 8101,
    kounta_port: Annotated[int, typer.Option(help="Kounta sandbox port.")] = 8102,
    host: Host = "127.0.0.1",
) -> None:
    """Everything on the embedded defaults: sandboxes, gateway, SQLite, a demo merchant."""
    from gateway.demo import DemoError, DemoPorts, run_demo

    try:
        with contextlib.suppress(KeyboardInterrupt):
            ports = DemoPorts(gateway=port, xseries=xseries_port, kounta=kounta_port)
            asyncio.run(run_demo(ports, host=host))
    except (DemoError, *EXPECTED) as exc:
        fail(str(exc))


# --------------------------------------------------------------------------- merchants


@merchants_app.command("add")
def merchants_add(
    name: Annotated[str, typer.Option(help="The merchant's name (unique).")],
    xseries_url: Annotated[
        str | None, typer.Option(help="X-Series base URL, e.g. https://shop.retail.lightspeed.app")
    ] = None,
    xseries_token: Annotated[
        str | None, typer.Option(help="X-Series personal token or OAuth access token.")
    ] = None,
    kounta_url: Annotated[
        str | None, typer.Option(help="Kounta API base URL, e.g. https://api.kounta.com")
    ] = None,
    kounta_company_id: Annotated[str | None, typer.Option(help="Kounta company id.")] = None,
    kounta_access_token: Annotated[str | None, typer.Option(help="Kounta access token.")] = None,
    kounta_refresh_token: Annotated[
        str | None, typer.Option(help="Kounta refresh token (single-use; rotated for you).")
    ] = None,
    kounta_payment_method_id: Annotated[
        str | None, typer.Option(help="The Kounta payment method that redeemed points pay with.")
    ] = None,
    points_source: Annotated[
        PointsSource | None,
        typer.Option(help="Balance of record (default: XSERIES with X-Series, else LEDGER)."),
    ] = None,
    points_label: Annotated[str, typer.Option(help="What points are called.")] = "Points",
    loyalty_ratio: Annotated[
        str | None, typer.Option(help="Points per currency unit spent (LEDGER merchants).")
    ] = None,
    verify: Annotated[bool, typer.Option(help="Check the credentials against the POS.")] = True,
) -> None:
    """Add a merchant, connect its POS accounts, register its Kounta webhook."""
    from gateway.domain.money import read_number
    from gateway.services.context import Services
    from gateway.services.merchants import KountaCredentials, XSeriesCredentials, add_merchant

    if bool(xseries_url) != bool(xseries_token):
        fail("--xseries-url and --xseries-token go together")
    kounta_given = [kounta_url, kounta_company_id, kounta_access_token]
    if any(kounta_given) and not all(kounta_given):
        fail("--kounta-url, --kounta-company-id and --kounta-access-token go together")
    xseries = None
    if xseries_url and xseries_token:
        xseries = XSeriesCredentials(xseries_url, xseries_token)
    kounta = None
    if kounta_url and kounta_company_id and kounta_access_token:
        kounta = KountaCredentials(
            kounta_url,
            kounta_company_id,
            kounta_access_token,
            kounta_refresh_token,
            kounta_payment_method_id,
        )
    try:
        ratio = read_number(loyalty_ratio) if loyalty_ratio else None
    except ValueError:
        fail("--loyalty-ratio must be a number like 0.1")

    async def work(runtime: Runtime) -> Merchant:
        return await add_merchant(
            Services(runtime),
            name=name,
            xseries=xseries,
            kounta=kounta,
            points_source=points_source,
            points_label=points_label,
            loyalty_ratio=ratio,
            verify=verify,
            warn=lambda message: typer.echo(f"warning: {message}", err=True),
        )

    merchant = _run(work)
    typer.echo(f"added merchant {merchant.name} ({merchant.id})")


@merchants_app.command("list")
def merchants_list() -> None:
    """List merchants."""

    async def work(runtime: Runtime) -> list[Merchant]:
        async with runtime.db.transaction() as session:
            return await merchant_store.list_merchants(session)

    for merchant in _run(work):
        systems = ",".join(pos.value for pos in merchant.pos_systems) or "-"
        typer.echo(
            f"{merchant.id}  {merchant.name}  pos={systems}  points={merchant.points_source}"
        )


@merchants_app.command("show")
def merchants_show(name: Annotated[str, typer.Argument(help="Merchant name.")]) -> None:
    """Show a merchant, its POS accounts (never their tokens) and, for Kounta, the two
    URLs to paste into the add-on's Loyalty tab."""

    async def work(runtime: Runtime) -> Merchant:
        return await _merchant(runtime, name)

    settings = Settings()
    merchant = _run(work)
    typer.echo(f"merchant       {merchant.name}")
    typer.echo(f"id             {merchant.id}")
    typer.echo(f"points source  {merchant.points_source}  (label: {merchant.points_label})")
    typer.echo(f"on a void      redeemed points: {merchant.redeemed_points_on_void.value}")
    for pos, account in merchant.accounts.items():
        detail = f"  company {account.account_id}" if account.account_id else ""
        typer.echo(f"{pos.label:<14} {account.base_url}{detail}")
        state = account.status.value
        if account.status_reason and account.status is not ConnectionStatus.CONNECTED:
            state += f" ({account.status_reason})"
        elif account.expires_at:
            state += f", token refreshed before {account.expires_at:%Y-%m-%d %H:%M} UTC"
        typer.echo(f"{'':<14} {state}")
    if merchant.has(Pos.KOUNTA):
        from gateway.services.connect import kounta_urls

        urls = kounta_urls(settings)
        if not urls:
            fail("GATEWAY_KOUNTA_ADDON_TOKEN is not set: the Kounta URLs need it")
        for label, url in urls.items():
            typer.echo(f"{label:<14} {url}")


@merchants_app.command("set")
def merchants_set(
    name: Annotated[str, typer.Argument(help="Merchant name.")],
    redeemed_points_on_void: Annotated[
        VoidChoice | None,
        typer.Option(
            help="Points redeemed on an order or sale that is then voided, rejected or "
            "deleted: return them to the customer, or keep them spent."
        ),
    ] = None,
) -> None:
    """Change a merchant's settings."""
    if redeemed_points_on_void is None:
        fail("nothing to set: give --redeemed-points-on-void return|keep")
    policy = VoidPolicy(redeemed_points_on_void.value.upper())

    async def work(runtime: Runtime) -> Merchant:
        merchant = await _merchant(runtime, name)
        async with runtime.db.transaction() as session:
            await merchant_store.set_void_policy(session, merchant.id, policy)
        return merchant

    merchant = _run(work)
    typer.echo(f"{merchant.name}: redeemed points on a void: {policy.value}")


@merchants_app.command("invite")
def merchants_invite(
    name: Annotated[str, typer.Option(help="The merchant's name (created if new).")],
    points_source: Annotated[
        PointsSource,
        typer.Option(help="Balance of record: XSERIES, or LEDGER for a Kounta-only shop."),
    ] = PointsSource.XSERIES,
    points_label: Annotated[str, typer.Option(help="What points are called.")] = "Points",
) -> None:
    """A one-time link the merchant connects its POS with (printed alone on the last line)."""
    from gateway.services import connect
    from gateway.services.context import Services

    async def work(runtime: Runtime) -> str:
        invitation = await connect.invite(
            Services(runtime), name, points_source=points_source, points_label=points_label
        )
        return connect.link(runtime.settings, invitation)

    url = _run(work)
    if not Settings().public_url:
        typer.echo("note: GATEWAY_PUBLIC_URL is not set; the link assumes http://127.0.0.1:8000",
                   err=True)  # fmt: skip
    typer.echo(f"connect link for {name} (send it to the merchant; it expires, and ends when "
               "they finish):")  # fmt: skip
    typer.echo(url)


@merchants_app.command("disconnect")
def merchants_disconnect(
    name: Annotated[str, typer.Argument(help="Merchant name.")],
    pos: Annotated[PosChoice, typer.Option(help="Which POS: xseries or kounta.")],
) -> None:
    """Remove the gateway's webhooks at that POS and forget its tokens (history kept)."""
    from gateway.services import connect
    from gateway.services.context import Services

    chosen = Pos.XSERIES if pos is PosChoice.XSERIES else Pos.KOUNTA

    async def work(runtime: Runtime) -> None:
        merchant = await _merchant(runtime, name)
        await connect.disconnect(Services(runtime), merchant, chosen)

    _run(work)
    typer.echo(f"disconnected {chosen.label} from {name}")


# --------------------------------------------------------------------------- rewards


@rewards_app.command("add")
def rewards_add(
    merchant: Annotated[str, typer.Option(help="Merchant name.")],
    id: Annotated[str, typer.Option("--id", help="Short id, e.g. free-coffee.")],
    title: Annotated[str, typer.Option(help="What staff and customers see.")],
    kind: Annotated[RewardChoice, typer.Option(help="payment or percent-discount.")],
    points: Annotated[str, typer.Option(help="Points it takes (the cap, if variable).")],
    value: Annotated[str, typer.Option(help="Money paid (per point if variable), or percent.")],
    variable: Annotated[bool, typer.Option(help="Staff choose how many points.")] = False,
    terms: Annotated[str | None, typer.Option(help="Terms shown with it.")] = None,
) -> None:
    """Add a reward to a merchant's catalogue."""
    from gateway.domain.money import read_number
    from gateway.domain.rewards import Reward, RewardKind
    from gateway.services import rewards
    from gateway.services.context import Services

    try:
        reward = Reward(
            id=id,
            title=title,
            kind=RewardKind.PAYMENT
            if kind is RewardChoice.PAYMENT
            else RewardKind.PERCENT_DISCOUNT,
            points_required=read_number(points),
            value=read_number(value),
            variable_quantity=variable,
            terms=terms,
        )
    except ValueError:
        fail("--points and --value must be numbers")

    async def work(runtime: Runtime) -> None:
        found = await _merchant(runtime, merchant)
        await rewards.add_reward(Services(runtime).scope(found), reward)

    _run(work)
    typer.echo(f"added reward {reward.id} to {merchant}")


@rewards_app.command("list")
def rewards_list(merchant: Annotated[str, typer.Option(help="Merchant name.")]) -> None:
    """The catalogue: id, kind, points, value, title."""
    from gateway.domain.rewards import Reward
    from gateway.services import rewards
    from gateway.services.context import Services

    async def work(runtime: Runtime) -> list[Reward]:
        found = await _merchant(runtime, merchant)
        return await rewards.list_rewards(Services(runtime).scope(found))

    for reward in _run(work):
        variable = " variable" if reward.variable_quantity else ""
        typer.echo(f"{reward.id:<20} {reward.kind.value:<17} points {reward.points_required:<8} "
                   f"value {reward.value:<8}{variable}  {reward.title}")  # fmt: skip


@rewards_app.command("archive")
def rewards_archive(
    merchant: Annotated[str, typer.Option(help="Merchant name.")],
    id: Annotated[str, typer.Option("--id", help="The reward's id.")],
) -> None:
    """Withdraw a reward: it is no longer offered; past redemptions keep it."""
    from gateway.services import rewards
    from gateway.services.context import Services

    async def work(runtime: Runtime) -> None:
        found = await _merchant(runtime, merchant)
        await rewards.archive_reward(Services(runtime).scope(found), id)

    _run(work)
    typer.echo(f"archived reward {id}")


# --------------------------------------------------------------------------- points


@points_app.command("adjust")
def points_adjust(
    merchant: Annotated[str, typer.Option(help="Merchant name.")],
    customer: Annotated[
        str, typer.Option(help="The customer's id in the API, or the POS's own id.")
    ],
    points: Annotated[str, typer.Option(help="Positive credits, negative debits: --points=-5.")],
    reason: Annotated[str, typer.Option(help="Why; the customer reads it in their history.")],
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Run it again with the same key: it is applied once (default: new)."),
    ] = None,
) -> None:
    """Credit or debit a customer's points by hand; prints the new balance."""
    import uuid

    from gateway.domain.money import round_money
    from gateway.services import adjust
    from gateway.services.context import Services

    key = idempotency_key or f"cli-{uuid.uuid4()}"

    async def work(runtime: Runtime) -> adjust.Adjusted:
        scope = Services(runtime).scope(await _merchant(runtime, merchant))
        return await adjust.adjust_points(
            scope,
            idempotency_key=key,
            customer_id=adjust.customer_id_of(scope, customer),
            points=points,
            reason=reason,
        )

    done = _run(work)
    moved = done.activity.points
    verb = "credited" if moved > 0 else "debited"
    typer.echo(f"{verb} {round_money(abs(moved))} points: {done.activity.reason}")
    typer.echo(f"balance {round_money(done.balance)}")


async def _merchant(runtime: Runtime, name: str) -> Merchant:
    async with runtime.db.transaction() as session:
        found = await merchant_store.get_merchant_by_name(session, name)
    if found is None:
        raise CliError(f"no merchant named {name!r}")
    return found


# --------------------------------------------------------------------------- keys


@keys_app.command("create")
def keys_create(
    merchant: Annotated[str, typer.Option(help="Merchant name.")],
) -> None:
    """Create an API key; it is printed once, alone on the last line."""

    async def work(runtime: Runtime) -> str:
        found = await _merchant(runtime, merchant)
        async with runtime.db.transaction() as session:
            return await key_store.create_api_key(session, found.id)

    key = _run(work)
    typer.echo(f"API key for {merchant} (shown once; send it as 'Authorization: Bearer <key>'):")
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="The key itself, or its id.")]) -> None:
    """Revoke an API key at once."""

    async def work(runtime: Runtime) -> key_store.ApiKeyInfo | None:
        async with runtime.db.transaction() as session:
            return await key_store.revoke_api_key(session, key)

    info = _run(work)
    if info is None:
        fail("no such API key")
    typer.echo(f"revoked key {info.id} ({info.prefix}...)")


@keys_app.command("list")
def keys_list(merchant: Annotated[str, typer.Option(help="Merchant name.")]) -> None:
    """List a merchant's keys (ids and prefixes only)."""

    async def work(runtime: Runtime) -> list[key_store.ApiKeyInfo]:
        found = await _merchant(runtime, merchant)
        async with runtime.db.transaction() as session:
            return await key_store.list_api_keys(session, found.id)

    for info in _run(work):
        state = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "active"
        typer.echo(f"{info.id}  {info.prefix}...  created {info.created_at:%Y-%m-%d}  {state}")


if __name__ == "__main__":
    main()
