"""Onboarding: add a merchant with its POS accounts, checking the credentials work first;
give it the default reward; register its Kounta webhook; describe its programme."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import structlog

from gateway.domain.errors import GatewayError, ValidationError
from gateway.domain.merchant import Merchant, PointsSource, Pos, PosAccount
from gateway.domain.rewards import default_rewards
from gateway.domain.signed import same_secret
from gateway.pos.errors import UpstreamError
from gateway.pos.http import BearerToken
from gateway.pos.kounta.client import KountaClient
from gateway.pos.xseries import XSeriesClient
from gateway.pos.xseries.client import LOYALTY_WRITE_FORBIDDEN
from gateway.runtime import Runtime
from gateway.services import catalog, subscriptions
from gateway.services.context import Scope, Services
from gateway.store import merchants as store
from gateway.store import rewards as reward_store
from gateway.store.merchants import Tokens

log = structlog.get_logger("gateway.merchants")

DEFAULT_LEDGER_RATIO = Decimal("0.1")


@dataclass(frozen=True)
class XSeriesCredentials:
    url: str
    token: str

    def __repr__(self) -> str:
        return f"XSeriesCredentials(url={self.url!r}, token=***)"


@dataclass(frozen=True)
class KountaCredentials:
    url: str
    company_id: str
    access_token: str
    refresh_token: str | None = None
    payment_method_id: str | None = None

    def __repr__(self) -> str:
        return f"KountaCredentials(url={self.url!r}, company_id={self.company_id!r}, tokens=***)"


async def add_merchant(
    services: Services,
    *,
    name: str,
    xseries: XSeriesCredentials | None = None,
    kounta: KountaCredentials | None = None,
    points_source: PointsSource | None = None,
    points_label: str = "Points",
    loyalty_ratio: Decimal | None = None,
    verify: bool = True,
    warn: Callable[[str], None] | None = None,
) -> Merchant:
    """``warn``: told what verification found that does not stop the merchant being added
    but will stop something working (default: logged)."""
    runtime = services.runtime
    if xseries is None and kounta is None:
        raise ValidationError("a merchant needs a POS account (--xseries-url or --kounta-url)")
    source = points_source or (PointsSource.XSERIES if xseries else PointsSource.LEDGER)
    if source is PointsSource.XSERIES and xseries is None:
        raise ValidationError("points source XSERIES needs an X-Series account")
    if kounta is not None and not kounta.payment_method_id:
        raise ValidationError(
            "--kounta-payment-method-id is needed: redeemed points are paid with that method"
        )
    if verify:
        if xseries:
            writes_loyalty = source is PointsSource.XSERIES
            for warning in await verify_xseries(runtime, xseries, writes_loyalty=writes_loyalty):
                (warn or _log_warning)(warning)
        if kounta:
            await verify_kounta(runtime, kounta)
    ratio = (
        loyalty_ratio if source is PointsSource.XSERIES else loyalty_ratio or DEFAULT_LEDGER_RATIO
    )
    async with runtime.db.transaction() as session:
        merchant = await store.create_merchant(session, name, source, points_label, ratio)
        if xseries:
            await store.connect_pos(
                session,
                runtime.cipher,
                merchant.id,
                PosAccount(Pos.XSERIES, xseries.url),
                Tokens(access_token=xseries.token),
            )
        if kounta:
            settings = {"payment_method_id": str(kounta.payment_method_id)}
            account = PosAccount(Pos.KOUNTA, kounta.url, kounta.company_id, settings)
            tokens = Tokens(kounta.access_token, kounta.refresh_token)
            await store.connect_pos(session, runtime.cipher, merchant.id, account, tokens)
            secret = "Bearer " + secrets.token_urlsafe(32)
            await store.set_webhook_secret(session, runtime.cipher, merchant.id, Pos.KOUNTA, secret)
        for reward in default_rewards():
            await reward_store.add_reward(session, merchant.id, reward)
        loaded = await store.get_merchant(session, merchant.id)
    assert loaded is not None
    if kounta:
        await subscriptions.ensure_kounta(services, loaded)
    if xseries and runtime.settings.public_url:
        # As a connection by consent does: its sales and customers reach the gateway now,
        # not after the next restart of `gateway serve` (without a public URL there is
        # nowhere to register, which that restart logs).
        try:
            await subscriptions.ensure_xseries(services, loaded)
        except GatewayError as exc:
            (warn or _log_warning)(f"X-Series webhooks not registered: {exc.message}")
    return loaded


async def verify_xseries(
    runtime: Runtime, credentials: XSeriesCredentials, *, writes_loyalty: bool = False
) -> list[str]:
    """Refuses credentials X-Series does not take. ``writes_loyalty`` (points source
    XSERIES: every credit and debit is a loyalty adjustment): also asks, without moving any
    points, whether the token may adjust balances; the warnings say what it found."""
    client = XSeriesClient.connect(runtime.http, credentials.url, BearerToken(credentials.token))
    try:
        await client.get_config()
    except UpstreamError as exc:
        raise ValidationError(
            f"cannot use these X-Series credentials at {credentials.url}: {exc.message}"
        ) from None
    if not writes_loyalty:
        return []
    try:
        if await client.can_write_loyalty():
            return []
    except UpstreamError as exc:
        return [f"could not check whether the X-Series token can write loyalty: {exc.message}"]
    return [
        f"{LOYALTY_WRITE_FORBIDDEN}. With points source XSERIES every credit and debit "
        "is a loyalty adjustment: until then Kounta redemptions and earnings fail"
    ]


def _log_warning(message: str) -> None:
    log.warning("merchant added with a warning", warning=message)


async def verify_kounta(runtime: Runtime, credentials: KountaCredentials) -> None:
    upstream = runtime.http.upstream(
        Pos.KOUNTA.label, credentials.url, BearerToken(credentials.access_token)
    )
    client = KountaClient(upstream, credentials.company_id)
    try:
        company = await client.get_company()
        if company.id != credentials.company_id:
            raise ValidationError(
                f"the Kounta token belongs to company {company.id}, not {credentials.company_id}"
            )
        methods = await client.payment_methods()
    except UpstreamError as exc:
        raise ValidationError(
            f"cannot use these Kounta credentials at {credentials.url}: {exc.message}"
        ) from None
    if credentials.payment_method_id not in {m.id for m in methods}:
        known = ", ".join(f"{m.id} ({m.name})" for m in methods)
        raise ValidationError(
            f"Kounta has no payment method {credentials.payment_method_id}; it has {known}"
        )


async def by_id(services: Services, merchant_id: str) -> Merchant | None:
    async with services.runtime.db.read() as session:
        return await store.get_merchant(session, merchant_id)


async def kounta_webhook_sender(
    services: Services, company_id: str, presented: str
) -> Merchant | None:
    """The merchant whose Kounta company this is, if ``presented`` is the Authorization its
    webhooks were registered with (docs/architecture.md, "Connecting a shop")."""
    async with services.runtime.db.read() as session:
        merchant = await store.find_merchant_by_account(session, Pos.KOUNTA, company_id)
        if merchant is None:
            return None
        secret = await store.webhook_secret(
            session, services.runtime.cipher, merchant.id, Pos.KOUNTA
        )
    return merchant if secret and same_secret(presented, secret) else None


async def xseries_webhook_sender(services: Services, secret: str) -> Merchant | None:
    """The merchant whose secret webhook address this is (its id, then the secret part)."""
    merchant_id, _, _ = secret[:200].partition(".")
    async with services.runtime.db.read() as session:
        merchant = await store.get_merchant(session, merchant_id) if merchant_id else None
        if merchant is None or not merchant.has(Pos.XSERIES):
            return None
        stored = await store.webhook_secret(
            session, services.runtime.cipher, merchant.id, Pos.XSERIES
        )
    return merchant if stored and same_secret(secret, stored) else None


async def by_kounta_company(services: Services, company_id: str) -> Merchant | None:
    """The merchant that installed the add-on for this Kounta company (remembered briefly:
    every call from the POS asks)."""

    async def load() -> Merchant | None:
        async with services.runtime.db.read() as session:
            return await store.find_merchant_by_account(session, Pos.KOUNTA, company_id)

    return await services.memo.get_or_load("kounta-company", company_id, load)


@dataclass(frozen=True)
class LoyaltyProfile:
    enabled: bool
    ratio: Decimal | None


async def loyalty_profile(scope: Scope) -> LoyaltyProfile:
    """Whether the programme earns and at what ratio: X-Series' account config when the
    balance lives there, the merchant's own ratio for the gateway's ledger."""
    if scope.merchant.points_source is PointsSource.XSERIES:
        config = await catalog.account_config(scope)
        return LoyaltyProfile(config.enable_loyalty, config.loyalty_ratio)
    ratio = scope.merchant.loyalty_ratio or DEFAULT_LEDGER_RATIO
    return LoyaltyProfile(True, ratio)
