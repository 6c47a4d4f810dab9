"""Onboarding: add a merchant with its POS accounts, checking the credentials work first."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gateway.domain.errors import ValidationError
from gateway.domain.merchant import Merchant, PointsSource, Pos, PosAccount
from gateway.pos.http import BearerToken, UpstreamError
from gateway.pos.xseries import XSeriesClient
from gateway.runtime import Runtime
from gateway.services import catalog
from gateway.services.context import Scope
from gateway.store import merchants as store
from gateway.store.merchants import Tokens


@dataclass(frozen=True)
class XSeriesCredentials:
    url: str
    token: str

    def __repr__(self) -> str:
        return f"XSeriesCredentials(url={self.url!r}, token=***)"


async def add_merchant(
    runtime: Runtime,
    *,
    name: str,
    xseries: XSeriesCredentials | None,
    points_source: PointsSource | None = None,
    points_label: str = "Points",
    verify: bool = True,
) -> Merchant:
    if xseries is None:
        raise ValidationError("a merchant needs at least one POS account (--xseries-url ...)")
    source = points_source or PointsSource.XSERIES
    if verify:
        await verify_xseries(runtime, xseries)
    async with runtime.db.transaction() as session:
        merchant = await store.create_merchant(session, name, source, points_label)
        await store.connect_pos(
            session,
            runtime.cipher,
            merchant.id,
            PosAccount(Pos.XSERIES, xseries.url),
            Tokens(access_token=xseries.token),
        )
        loaded = await store.get_merchant(session, merchant.id)
    assert loaded is not None
    return loaded


async def verify_xseries(runtime: Runtime, credentials: XSeriesCredentials) -> None:
    client = XSeriesClient(
        runtime.http.upstream(Pos.XSERIES.label, credentials.url, BearerToken(credentials.token))
    )
    try:
        await client.get_config()
    except UpstreamError as exc:
        raise ValidationError(
            f"cannot use these X-Series credentials at {credentials.url}: {exc.message}"
        ) from None


@dataclass(frozen=True)
class LoyaltyProfile:
    enabled: bool
    ratio: Decimal | None


async def loyalty_profile(scope: Scope) -> LoyaltyProfile:
    """Whether the merchant's programme earns, and at what ratio (X-Series account config)."""
    config = await catalog.account_config(scope)
    return LoyaltyProfile(config.enable_loyalty, config.loyalty_ratio)
