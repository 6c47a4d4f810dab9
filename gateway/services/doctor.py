"""``gateway doctor``: is this deployment able to do its work, and if not, what to do about it.

Each check is one row: a subject (settings, the database, a merchant's POS), what was
checked, ok / warn / FAIL, what was found and, for every problem, a fix an operator can act
on (a command of this CLI, or a step in the POS's back office). FAIL means money work is
stopped or will fail (a token the POS refuses, a schema behind the code, a worker that has
stopped); warn means something is degraded or unusual but nothing fails yet.

The POS checks call each POS the way the gateway does, through the merchant's stored
credentials, so they see what the gateway would: a token the POS refuses makes the
connection RECONNECT_NEEDED here exactly as it would in a request. They read only, apart
from the loyalty permission probe (an empty adjustment, which moves no points:
``XSeriesClient.can_write_loyalty``) and, with ``fix_webhooks``, registering the gateway's
missing webhooks (``services/subscriptions.py``, the same code ``gateway serve`` runs at
start-up). Nothing here ever shows a token or a secret.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from gateway.domain.errors import GatewayError, PosDisconnected
from gateway.domain.merchant import ConnectionStatus, Merchant, PointsSource, Pos
from gateway.pos.budget import Account, allowance
from gateway.pos.errors import UpstreamForbidden
from gateway.pos.kounta.client import KountaClient
from gateway.pos.xseries import XSeriesClient
from gateway.pos.xseries.client import LOYALTY_WRITE_FORBIDDEN
from gateway.runtime import Runtime
from gateway.services import earning, subscriptions
from gateway.services.context import Scope, Services
from gateway.settings import MissingSecretKey, Settings
from gateway.store import backlog, worker_passes
from gateway.store import merchants as merchant_store
from gateway.store.crypto import UndecryptableToken

# A production key shorter than this is not a real secret (it signs offers and encrypts
# every stored token); the generator ``MissingSecretKey`` suggests gives 43 characters.
MIN_SECRET_KEY_CHARS = 32
# How long a backend may take to answer a ping before it counts as unreachable.
PING_TIMEOUT_S = 5.0
# The OAuth app the settings default to: the sandboxes' development one.
SANDBOX_CLIENT_ID = Settings.model_fields["xseries_client_id"].default

T = TypeVar("T")


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    subject: str
    check: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(check.status is Status.FAIL for check in self.checks)

    def add(
        self, subject: str, check: str, status: Status, detail: str, fix: str | None = None
    ) -> None:
        self.checks.append(Check(subject, check, status, detail, fix))


class UnknownMerchant(LookupError):
    pass


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


async def diagnose(
    runtime: Runtime,
    *,
    merchant: str | None = None,
    fix_webhooks: bool = False,
    progress: Progress = _quiet,
) -> Report:
    """Every check, in order: settings, database, cache, worker, then each merchant's POS
    (only ``merchant`` when named; an unknown name is ``UnknownMerchant``). What cannot be
    checked because something before it failed (no database, no schema) is left out: its
    cause is a FAIL row already."""
    report = Report()
    _settings(runtime, report)
    progress("checking the database and the cache")
    migrated = await _database(runtime, report)
    await _cache(runtime, report)
    if not migrated:
        return report
    await _worker(runtime, report)
    merchants = await _merchants(runtime, merchant)
    _addon_token(runtime, report, merchants)
    if not _has_key(runtime):
        return report  # the stored tokens cannot be read: the secret key row says why
    services = Services(runtime)
    for index, found in enumerate(merchants, 1):
        progress(f"checking merchant {index}/{len(merchants)}: {found.name}")
        await _merchant(services, found, report, fix_webhooks=fix_webhooks)
    return report


# --------------------------------------------------------------------------- settings


def _settings(runtime: Runtime, report: Report) -> None:
    settings = runtime.settings
    production = settings.is_production
    subject = "settings"
    key_fix = (
        "set GATEWAY_SECRET_KEY (or GATEWAY_SECRET_KEY_FILE) to a random secret: "
        'python -c "import secrets; print(secrets.token_urlsafe(32))"'
    )
    try:
        key = settings.secret_key_bytes
    except MissingSecretKey as missing:
        report.add(subject, "secret key", Status.FAIL, str(missing).split(":")[0], key_fix)
    else:
        if production and len(key) < MIN_SECRET_KEY_CHARS:
            report.add(
                subject,
                "secret key",
                Status.FAIL,
                f"shorter than {MIN_SECRET_KEY_CHARS} characters in production",
                key_fix + " (tokens stored under the old key must then be re-encrypted, or the "
                "shops reconnected)",
            )
        else:
            report.add(subject, "secret key", Status.OK, "set (not shown)")

    public = settings.public_url
    url_fix = "set GATEWAY_PUBLIC_URL to the https address the POS reach the gateway at"
    if public is None:
        report.add(
            subject,
            "public URL",
            Status.FAIL if production else Status.WARN,
            "GATEWAY_PUBLIC_URL is not set: no webhooks are registered, and links use "
            "the address each request came to",
            url_fix,
        )
    elif production and urlsplit(public).scheme != "https":
        report.add(
            subject, "public URL", Status.FAIL, f"{public} is not https in production", url_fix
        )
    else:
        report.add(subject, "public URL", Status.OK, public)

    sandbox_apps = [
        name
        for name, client_id in (
            ("GATEWAY_XSERIES_CLIENT_ID", settings.xseries_client_id),
            ("GATEWAY_KOUNTA_CLIENT_ID", settings.kounta_client_id),
        )
        if client_id == SANDBOX_CLIENT_ID
    ]
    if production and sandbox_apps:
        report.add(
            subject,
            "OAuth apps",
            Status.FAIL,
            f"{', '.join(sandbox_apps)} still the sandboxes' development app",
            "set them, and their _CLIENT_SECRET, to the apps registered at each POS "
            '(README, "Connecting a shop")',
        )
    else:
        report.add(
            subject,
            "OAuth apps",
            Status.OK,
            f"X-Series {settings.xseries_client_id}, Kounta {settings.kounta_client_id}",
        )


def _has_key(runtime: Runtime) -> bool:
    try:
        runtime.settings.secret_key_bytes  # noqa: B018 (reading it is the check)
    except MissingSecretKey:
        return False
    return True


def _addon_token(runtime: Runtime, report: Report, merchants: list[Merchant]) -> None:
    """The secret in the Kounta add-on URLs: without it Kounta's POS cannot call us. A
    settings row, shown with the others, though it needs the merchants to judge."""
    row = Report()
    _addon_token_row(runtime, row, merchants)
    after = max(i for i, check in enumerate(report.checks) if check.subject == "settings")
    report.checks[after + 1 : after + 1] = row.checks


def _addon_token_row(runtime: Runtime, report: Report, merchants: list[Merchant]) -> None:
    on_kounta = [m.name for m in merchants if Pos.KOUNTA in m.accounts]
    if runtime.settings.kounta_addon_token is not None:
        report.add("settings", "Kounta add-on token", Status.OK, "set (not shown)")
    elif on_kounta:
        report.add(
            "settings",
            "Kounta add-on token",
            Status.FAIL,
            f"GATEWAY_KOUNTA_ADDON_TOKEN is not set, and {len(on_kounta)} merchant(s) "
            "use Kounta: its POS cannot look up or redeem rewards",
            "set GATEWAY_KOUNTA_ADDON_TOKEN to a random secret, then paste the URLs "
            "`gateway merchants show NAME` prints into each add-on's Loyalty tab",
        )
    else:
        report.add("settings", "Kounta add-on token", Status.OK, "not set (no Kounta merchant)")


# --------------------------------------------------------------------------- backends


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL: say only its scheme
        return url.split(":", 1)[0] + "://..."


async def _database(runtime: Runtime, report: Report) -> bool:
    """Reachable and migrated to the newest revision; True when both."""
    where = _safe_url(runtime.settings.database_url)
    try:
        await asyncio.wait_for(runtime.db.ping(), PING_TIMEOUT_S)
    except Exception as exc:  # any failure means unreachable; say which
        report.add(
            "database",
            "reachable",
            Status.FAIL,
            f"{where}: {type(exc).__name__}",
            "check GATEWAY_DATABASE_URL and that the database server is up",
        )
        return False
    report.add("database", "reachable", Status.OK, where)
    current, head = await runtime.db.revisions()
    if current != head:
        report.add(
            "database",
            "migrated",
            Status.FAIL,
            f"schema at {current or 'nothing (empty)'}, the code needs {head}",
            "run `gateway migrate`",
        )
        return False
    report.add("database", "migrated", Status.OK, f"at {head} (the newest)")
    return True


async def _cache(runtime: Runtime, report: Report) -> None:
    backend = runtime.cache.backend_name
    try:
        await asyncio.wait_for(runtime.cache.ping(), PING_TIMEOUT_S)
    except Exception as exc:  # any failure means unreachable; say which
        report.add(
            "cache",
            "reachable",
            Status.FAIL,
            f"{backend}: {type(exc).__name__}",
            "check GATEWAY_CACHE_URL and that Redis is up",
        )
        return
    report.add("cache", "reachable", Status.OK, backend)


# --------------------------------------------------------------------------- worker


def _ago(then: datetime, now: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


async def _worker(runtime: Runtime, report: Report) -> None:
    settings = runtime.settings
    start = (
        "start it: `gateway worker` (or `gateway serve` with "
        "GATEWAY_WORKER_IN_PROCESS=true, the default)"
    )
    now = datetime.now(UTC)
    async with runtime.db.read() as session:
        last = await worker_passes.last(session)
        unsettled = await backlog.unsettled(session, (earning.OPERATION,))
    if last is None:
        report.add("worker", "last pass", Status.WARN, "no pass recorded yet", start)
    else:
        # Overdue after three missed passes (or, for `--once` runs, two reconciliations).
        pace = last.interval_s
        due = 3 * pace + 60 if pace is not None else 2 * settings.reconcile_interval_s
        detail = f"{_ago(last.finished_at, now)}" + (
            f", every {pace:g} s" if pace else ", a single pass (--once)"
        )
        if now - last.finished_at > timedelta(seconds=due):
            report.add("worker", "last pass", Status.FAIL, f"{detail}: overdue", start)
        else:
            report.add("worker", "last pass", Status.OK, detail)

    # Work younger than this may simply be in progress (a lease, a settle window, a pass).
    grace = settings.lease_s + settings.upstream_settle_s + 2 * settings.worker_interval_s
    overdue_since = now - timedelta(seconds=grace)
    waiting = [item for item in unsettled if item.count]
    if not waiting:
        report.add("worker", "backlog", Status.OK, "nothing unsettled")
        return
    detail = ", ".join(f"{item.count} {item.kind}" for item in waiting)
    oldest = min(item.oldest for item in waiting if item.oldest is not None)
    if oldest < overdue_since:
        report.add(
            "worker",
            "backlog",
            Status.WARN,
            f"{detail}; the oldest since {_ago(oldest, now)}",
            "run `gateway worker --once` and read what is still failing; work waits "
            "while a connection needs reconnecting (see the merchants' rows)",
        )
    else:
        report.add("worker", "backlog", Status.OK, f"{detail}, all recent (in progress)")


# --------------------------------------------------------------------------- merchants


async def _merchants(runtime: Runtime, name: str | None) -> list[Merchant]:
    async with runtime.db.read() as session:
        if name is None:
            return await merchant_store.list_merchants(session)
        found = await merchant_store.get_merchant_by_name(session, name)
    if found is None:
        raise UnknownMerchant(f"no merchant named {name!r}")
    return [found]


def _reconnect(merchant: Merchant, pos: Pos) -> str:
    return (
        f'reconnect the shop: `gateway merchants invite --name "{merchant.name}"`, send '
        f"the merchant the link, and have them press Reconnect on {pos.label}"
    )


async def _merchant(
    services: Services, merchant: Merchant, report: Report, *, fix_webhooks: bool
) -> None:
    if not merchant.accounts:
        report.add(
            merchant.name,
            "POS",
            Status.WARN,
            "no POS connected yet",
            f'send the connect link: `gateway merchants invite --name "{merchant.name}"`',
        )
        return
    scope = services.scope(merchant)
    for pos, account in merchant.accounts.items():
        subject = f"{merchant.name} / {pos.label}"
        if account.status is ConnectionStatus.CONNECTED:
            await _PosChecks(scope, pos, report, fix_webhooks=fix_webhooks).run()
        await _connection(services, merchant, pos, subject, report)


async def _connection(
    services: Services, merchant: Merchant, pos: Pos, subject: str, report: Report
) -> None:
    """Read again after the checks: a token the POS refused during them has changed it."""
    async with services.runtime.db.read() as session:
        now = await merchant_store.get_merchant(session, merchant.id)
    account = now.accounts.get(pos) if now is not None else None
    if account is None:
        return
    state = account.status
    if state is ConnectionStatus.CONNECTED:
        report.add(subject, "connection", Status.OK, state.value)
    elif state is ConnectionStatus.RECONNECT_NEEDED:
        why = f": {account.status_reason}" if account.status_reason else ""
        report.add(
            subject, "connection", Status.FAIL, f"{state.value}{why}", _reconnect(merchant, pos)
        )
    else:
        report.add(
            subject,
            "connection",
            Status.WARN,
            state.value,
            f"connect it again if it should be: `gateway merchants invite --name "
            f'"{merchant.name}"` and open the link',
        )


class _Stop(Exception):
    """A failure that makes the POS's other checks pointless (it refuses us, or is down)."""


class _PosChecks:
    """The checks of one merchant's connected POS, each a row under ``subject``."""

    def __init__(self, scope: Scope, pos: Pos, report: Report, *, fix_webhooks: bool) -> None:
        self.scope = scope
        self.pos = pos
        self.report = report
        self.fix_webhooks = fix_webhooks
        self.merchant = scope.merchant
        self.runtime = scope.runtime
        self.subject = f"{scope.merchant.name} / {pos.label}"

    def add(self, check: str, status: Status, detail: str, fix: str | None = None) -> None:
        self.report.add(self.subject, check, status, detail, fix)

    @property
    def reconnect(self) -> str:
        return _reconnect(self.merchant, self.pos)

    async def ask(self, check: str, call: Callable[[], Awaitable[T]]) -> T:
        """One POS call for ``check``: a refusal or an outage becomes its FAIL row, with the
        fix that suits it, and stops this POS's remaining checks."""
        label = self.pos.label
        try:
            return await call()
        except PosDisconnected as exc:
            self.add(check, Status.FAIL, exc.message, self.reconnect)
        except UpstreamForbidden as exc:
            self.add(
                check,
                Status.FAIL,
                f"{label} refused (a permission the token lacks): {exc.message}",
                self.reconnect + " (the consent asks for every scope the gateway needs)",
            )
        except UndecryptableToken:
            self.add(
                check,
                Status.FAIL,
                "the stored tokens cannot be read with this secret key",
                "start with the secret key they were stored under, or " + self.reconnect,
            )
        except GatewayError as exc:
            self.add(
                check,
                Status.FAIL,
                f"{label} did not answer: {exc.message}",
                f"try again later; if it lasts, check {label}'s status and the "
                "GATEWAY_UPSTREAM_* timeouts",
            )
        raise _Stop

    async def run(self) -> None:
        try:
            if self.pos is Pos.XSERIES:
                await self.xseries(await self.ask("authentication", self.scope.xseries))
            else:
                await self.kounta(self.scope.kounta())
        except _Stop:
            return

    # ------------------------------------------------------------------- X-Series

    async def xseries(self, client: XSeriesClient) -> None:
        config = await self.ask("authentication", client.get_config)
        self.add(
            "authentication",
            Status.OK,
            f"store {config.domain_prefix or config.retailer_name or '?'}",
        )

        keeps_points = self.merchant.points_source is PointsSource.XSERIES
        if config.enable_loyalty:
            self.add("loyalty enabled", Status.OK, f"ratio {config.loyalty_ratio}")
        else:
            self.add(
                "loyalty enabled",
                Status.FAIL if keeps_points else Status.WARN,
                "loyalty is off in the store: sales earn nothing, balances cannot be spent",
                "turn loyalty on in the X-Series back office (its loyalty settings)",
            )

        if keeps_points:  # every credit and debit is a loyalty adjustment (merchants add)
            if await self.ask("loyalty write", client.can_write_loyalty):
                self.add("loyalty write", Status.OK, "the token may adjust balances")
            else:
                self.add("loyalty write", Status.FAIL, LOYALTY_WRITE_FORBIDDEN, self.reconnect)

        types = await self.ask("Loyalty payment type", client.list_payment_types)
        loyalty = [t for t in types if t.is_loyalty]
        if loyalty:
            self.add("Loyalty payment type", Status.OK, loyalty[0].name or "present")
        else:
            self.add(
                "Loyalty payment type",
                Status.FAIL,
                "the store has no Loyalty payment type: paying with points fails",
                "turn loyalty on in the X-Series back office: a store with loyalty on "
                "always has the Loyalty payment type (docs/pos-contracts.md)",
            )

        base = self.runtime.settings.public_url
        if base is not None:
            secret = await self._secret()
            address = f"{base}{subscriptions.XSERIES_PATH}/{secret}" if secret else None

            async def missing() -> list[str]:
                hooks = await self.ask("webhooks", client.list_webhooks)
                have = {(hook.type, hook.url) for hook in hooks if hook.active}
                return [t for t in subscriptions.XSERIES_TYPES if (t, address) not in have]

            await self.webhooks(base, missing)
        else:
            self._webhooks_unchecked()
        await self.headroom(client.upstream.account)

    async def headroom(self, account: Account | None) -> None:
        """What the check calls left of the store's rate window (``gateway/pos/budget.py``:
        learnt from X-Series' own X-RateLimit headers, shared through the cache)."""
        room = await self.runtime.http.budget.headroom(account) if account else None
        if room is None:
            self.add("rate budget", Status.OK, "no rate window stated yet")
            return
        reserve = self.runtime.settings.upstream_budget_reserve
        floor = room.limit - allowance(room.limit, reserve, background=True)
        resets = datetime.fromtimestamp(room.reset_at, UTC)
        detail = f"{room.remaining} of {room.limit} left until {resets:%H:%M:%S} UTC"
        if room.remaining <= floor:
            wait = max(0, int(room.reset_at - time.time()))
            self.add(
                "rate budget",
                Status.WARN,
                f"{detail}: background work (the worker, earnings) waits meanwhile",
                f"it resets in {wait} s; if it recurs, find what spends it (upstream "
                "calls by endpoint in /metrics)",
            )
        else:
            self.add("rate budget", Status.OK, detail)

    # ------------------------------------------------------------------- Kounta

    async def kounta(self, client: KountaClient) -> None:
        account = self.merchant.accounts[Pos.KOUNTA]
        company = await self.ask("authentication", client.get_company)
        if company.id != account.account_id:
            self.add(
                "authentication",
                Status.FAIL,
                f"the token is for company {company.id}, not {account.account_id}",
                self.reconnect,
            )
            return
        self.add("authentication", Status.OK, f"company {company.id}")

        chosen = account.settings.get("payment_method_id")
        methods = await self.ask("payment method", client.payment_methods)
        found = [m for m in methods if m.id == chosen]
        if found:
            self.add("payment method", Status.OK, f"{found[0].name} ({chosen})")
        else:
            self.add(
                "payment method",
                Status.FAIL,
                f"the payment method rewards are paid with ({chosen or 'none chosen'}) "
                "is not in the company: Kounta redemptions fail",
                self.reconnect + ", and choose the loyalty payment method",
            )

        base = self.runtime.settings.public_url
        if base is not None:
            secret = await self._secret() or ""
            address = base + subscriptions.KOUNTA_PATH

            async def missing() -> list[str]:
                hooks = await self.ask("webhooks", client.list_webhooks)
                have = {
                    hook.topic
                    for hook in hooks
                    if hook.address == address and hook.headers.get("Authorization") == secret
                }
                return [topic for topic in subscriptions.KOUNTA_TOPICS if topic not in have]

            await self.webhooks(base, missing)
        else:
            self._webhooks_unchecked()
        self.add("rate budget", Status.OK, "Kounta publishes no limit: its 429s are waited out")

    # ------------------------------------------------------------------- webhooks

    async def _secret(self) -> str | None:
        async with self.runtime.db.read() as session:
            return await merchant_store.webhook_secret(
                session, self.runtime.cipher, self.merchant.id, self.pos
            )

    def _webhooks_unchecked(self) -> None:
        self.add(
            "webhooks",
            Status.WARN,
            "not checked: GATEWAY_PUBLIC_URL is not set",
            "set GATEWAY_PUBLIC_URL (see the settings row)",
        )

    async def webhooks(self, base: str, missing: Callable[[], Awaitable[list[str]]]) -> None:
        """Compare what the POS has with what ``services/subscriptions.py`` registers; with
        ``fix_webhooks``, register what is missing through it and look again."""
        absent = await missing()
        if absent and self.fix_webhooks:
            ensure = (
                subscriptions.ensure_xseries
                if self.pos is Pos.XSERIES
                else subscriptions.ensure_kounta
            )
            await self.ask("webhooks", lambda: ensure(self.scope.services, self.merchant))
            still = await missing()
            if not still:
                self.add(
                    "webhooks", Status.OK, f"{', '.join(absent)} registered now at {base} (--fix)"
                )
                return
            absent = still
        if absent:
            self.add(
                "webhooks",
                Status.FAIL,
                f"not registered at {base}: {', '.join(absent)}",
                f'register them: `gateway doctor --merchant "{self.merchant.name}" --fix` '
                "(`gateway serve` also does at start-up)",
            )
        else:
            self.add("webhooks", Status.OK, f"all registered at {base}")
