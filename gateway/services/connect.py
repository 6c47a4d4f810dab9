"""Connecting a shop: the merchant's one-time connect link, each POS's OAuth consent and
its callback, the loyalty payment method, webhooks, disconnecting, a first API key
(README, "Connecting a shop").

An invite is a random id, signed, that expires and ends when the merchant finishes. Each
"Connect" starts an OAuth ``state`` (signed, single use, expiring, bound to the invite);
the callback takes it back, exchanges the code at the POS, stores the tokens encrypted with
their expiry, registers the webhooks, and the connection is CONNECTED. Whatever refuses
(Deny, a replayed or forged state, a code the POS will not take) is a ``ConnectRefused``
whose message the page shows, and nothing is stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from gateway.domain import signed
from gateway.domain.errors import ErrorCode, GatewayError, ValidationError
from gateway.domain.merchant import ConnectionStatus, Merchant, PointsSource, Pos, PosAccount
from gateway.domain.rewards import default_rewards
from gateway.pos.errors import UpstreamError
from gateway.pos.http import BearerToken
from gateway.pos.kounta import oauth as kounta_oauth
from gateway.pos.kounta.client import KountaClient
from gateway.pos.kounta.models import PaymentMethod
from gateway.pos.oauth import TokenSet
from gateway.pos.xseries import oauth as xseries_oauth
from gateway.services import earning, subscriptions
from gateway.services.context import Services
from gateway.settings import Settings
from gateway.store import api_keys
from gateway.store import connections as store
from gateway.store import merchants as merchant_store
from gateway.store import rewards as reward_store
from gateway.store.connections import Invite
from gateway.store.merchants import Tokens

log = structlog.get_logger("gateway.connect")

INVITE = "invite"
STATE = "oauth-state"
CALLBACK = {Pos.XSERIES: "/connect/xseries/callback", Pos.KOUNTA: "/connect/kounta/callback"}
# A payment method whose name says this is taken for the loyalty one without asking.
LOYALTY_WORDS = ("loyalty", "points", "reward")


class ConnectRefused(ValidationError):
    """The connect link or an OAuth step was refused; the message is for the merchant.
    ``invitation``: the link the step belongs to, when it is known (a forged or replayed
    state tells none), so the page can lead back to it."""

    def __init__(self, message: str, *, invitation: Invitation | None = None) -> None:
        super().__init__(message)
        self.invitation = invitation


class LinkGone(ConnectRefused):
    """The link was good once and is no more (expired, or finished): a page says so with
    410 rather than 404."""


@dataclass(frozen=True)
class Invitation:
    invite: Invite
    merchant: Merchant
    token: str  # the signed invite, as it stands in the link


def public_url(settings: Settings, fallback: str) -> str:
    return (settings.public_url or fallback).rstrip("/")


def kounta_urls(settings: Settings, fallback: str = "http://127.0.0.1:8000") -> dict[str, str]:
    """The two URLs for the Kounta add-on's Loyalty tab; empty without the add-on token.
    They carry that token: show them, never log them."""
    token = settings.kounta_addon_token.get_secret_value() if settings.kounta_addon_token else ""
    if not token:
        return {}
    base = f"{public_url(settings, fallback)}/kounta/{token}"
    return {"Kounta search": f"{base}/customer-search", "Kounta rewards": f"{base}/reward-lookup"}


def link(
    settings: Settings, invitation: Invitation, fallback: str = "http://127.0.0.1:8000"
) -> str:
    return f"{public_url(settings, fallback)}/connect/{invitation.token}"


async def invite(
    services: Services,
    name: str,
    *,
    points_source: PointsSource = PointsSource.XSERIES,
    points_label: str = "Points",
) -> Invitation:
    """A new connect link for the merchant ``name``, created if it does not exist yet (with
    the default reward). An earlier link stays good until it expires or is finished."""
    runtime = services.runtime
    now = datetime.now(UTC)
    async with runtime.db.transaction() as session:
        merchant = await merchant_store.get_merchant_by_name(session, name)
        if merchant is None:
            merchant = await merchant_store.create_merchant(session, name, points_source,
                                                            points_label)  # fmt: skip
            for reward in default_rewards():
                await reward_store.add_reward(session, merchant.id, reward)
        ttl = timedelta(seconds=runtime.settings.invite_ttl_s)
        created = await store.create_invite(session, merchant.id, now, ttl)
    token = signed.sign(runtime.settings.secret_key_bytes, INVITE, created.id)
    return Invitation(created, merchant, token)


async def open_invite(services: Services, token: str) -> Invitation:
    """The invitation behind a link; refused if forged, unknown, expired or finished."""
    runtime = services.runtime
    key, *previous = runtime.settings.secret_keys_bytes
    invite_id = signed.unsign(key, INVITE, token[:200], previous=previous)
    if invite_id is None:
        raise ConnectRefused("this connect link is not valid: ask for a new one")
    async with runtime.db.read() as session:
        found = await store.get_invite(session, invite_id)
        merchant = await merchant_store.get_merchant(session, found.merchant_id) if found else None
    if found is None or merchant is None:
        raise ConnectRefused("this connect link is not valid: ask for a new one")
    if found.finished_at is not None:
        raise LinkGone("this connect link was used to the end: ask for a new one")
    if not found.usable(datetime.now(UTC)):
        raise LinkGone("this connect link has expired: ask for a new one")
    return Invitation(found, merchant, token)


async def start(services: Services, invitation: Invitation, pos: Pos, base_url: str) -> str:
    """Where to send the merchant's browser to approve the gateway at ``pos``."""
    runtime = services.runtime
    settings = runtime.settings
    now = datetime.now(UTC)
    ttl = timedelta(seconds=settings.oauth_state_ttl_s)
    async with runtime.db.transaction() as session:
        state_id = await store.create_state(session, invitation.invite.id, pos.value, now, ttl)
    state = signed.sign(settings.secret_key_bytes, STATE, state_id)
    redirect_uri = public_url(settings, base_url) + CALLBACK[pos]
    if pos is Pos.XSERIES:
        return xseries_oauth.connect_url(
            settings.xseries_connect_url, client_id=settings.xseries_client_id,
            redirect_uri=redirect_uri, state=state,
        )  # fmt: skip
    return kounta_oauth.authorize_url(
        settings.kounta_authorize_url, client_id=settings.kounta_client_id,
        redirect_uri=redirect_uri, state=state,
    )  # fmt: skip


async def finish(
    services: Services,
    pos: Pos,
    *,
    state: str,
    code: str | None,
    error: str | None,
    domain_prefix: str | None,
    base_url: str,
) -> Invitation:
    """The consent's callback: the state taken back (once), the code exchanged, the tokens
    stored, the webhooks registered. Returns the invitation, to show its page again."""
    runtime = services.runtime
    settings = runtime.settings
    key, *previous = settings.secret_keys_bytes
    state_id = signed.unsign(key, STATE, state[:200], previous=previous)
    async with runtime.db.transaction() as session:
        invite_id = (
            await store.take_state(session, state_id, pos.value, datetime.now(UTC))
            if state_id
            else None
        )
        invite = await store.get_invite(session, invite_id) if invite_id else None
    if invite is None or not invite.usable(datetime.now(UTC)):
        raise ConnectRefused(
            f"this {pos.label} connection was not started from a valid connect link, or was "
            "already finished: start again from your connect page"
        )
    invitation = await open_invite(services, signed.sign(settings.secret_key_bytes, INVITE,
                                                         invite.id))  # fmt: skip
    if error or not code:
        why = "you declined" if error == "access_denied" else (error or "no code came back")
        raise ConnectRefused(
            f"{pos.label} was not connected ({why[:100]}): nothing was stored",
            invitation=invitation,
        )
    redirect_uri = public_url(settings, base_url) + CALLBACK[pos]
    try:
        if pos is Pos.XSERIES:
            merchant = await _connect_xseries(services, invitation, code, domain_prefix,
                                              redirect_uri)  # fmt: skip
        else:
            merchant = await _connect_kounta(services, invitation, code, redirect_uri)
    except UpstreamError as refused:
        log.info("connect refused by the POS", pos=pos.value, reason=refused.message)
        why = refused.upstream_message or str(refused.status)
        raise ConnectRefused(
            f"{pos.label} did not accept the connection ({why}): nothing was stored; try again",
            invitation=invitation,
        ) from None
    except ValidationError as refused:  # no domain_prefix; an account another merchant holds
        raise ConnectRefused(refused.message, invitation=invitation) from None
    services.clients.forget(merchant.id)
    services.memo.clear()
    await _subscribe(services, merchant, pos)
    return Invitation(invitation.invite, merchant, invitation.token)


async def _subscribe(services: Services, merchant: Merchant, pos: Pos) -> None:
    """The webhooks, once connected. The connection stands if the POS refuses them now: they
    are checked again at every start-up, and reconciliation finds what they would have said
    (services/reconcile.py)."""
    ensure = subscriptions.ensure_xseries if pos is Pos.XSERIES else subscriptions.ensure_kounta
    try:
        await ensure(services, merchant)
    except GatewayError as failed:
        log.warning("connected, but the webhooks are not registered yet", pos=pos.value,
                    merchant=merchant.name, reason=failed.message)  # fmt: skip


async def _connect_xseries(
    services: Services,
    invitation: Invitation,
    code: str,
    domain_prefix: str | None,
    redirect_uri: str,
) -> Merchant:
    runtime = services.runtime
    settings = runtime.settings
    if not domain_prefix or not domain_prefix.replace("-", "").isalnum():
        raise ConnectRefused("X-Series did not say which store it is (domain_prefix)")
    base_url = xseries_oauth.store_url(settings.xseries_api_url, domain_prefix)
    grant = await xseries_oauth.exchange_code(
        services.clients.token_endpoint(Pos.XSERIES, base_url), code=code,
        client_id=settings.xseries_client_id,
        client_secret=settings.xseries_client_secret.get_secret_value(),
        redirect_uri=redirect_uri,
    )  # fmt: skip
    account = PosAccount(Pos.XSERIES, base_url, grant.domain_prefix or domain_prefix)
    return await _store(services, invitation.merchant, account, grant.tokens)


async def _connect_kounta(
    services: Services, invitation: Invitation, code: str, redirect_uri: str
) -> Merchant:
    runtime = services.runtime
    settings = runtime.settings
    base_url = settings.kounta_api_url.rstrip("/")
    tokens = await kounta_oauth.exchange_code(
        services.clients.token_endpoint(Pos.KOUNTA, base_url), code=code,
        client_id=settings.kounta_client_id,
        client_secret=settings.kounta_client_secret.get_secret_value(),
        redirect_uri=redirect_uri,
    )  # fmt: skip
    # Which company: asked with the new token itself (never taken from the browser).
    probe = runtime.http.upstream(Pos.KOUNTA.label, base_url, BearerToken(tokens.access_token))
    client = KountaClient(probe, "")
    company = await client.get_company()
    methods = await KountaClient(probe, company.id).payment_methods()
    chosen = _loyalty_method(methods)
    before = invitation.merchant.accounts.get(Pos.KOUNTA)
    if chosen:
        settings_ = {"payment_method_id": chosen.id}
    elif before is not None and before.account_id == company.id:  # reconnected: kept
        settings_ = dict(before.settings)
    else:
        settings_ = {}
    account = PosAccount(Pos.KOUNTA, base_url, company.id, settings_)
    merchant = await _store(services, invitation.merchant, account, tokens)
    async with runtime.db.transaction() as session:
        secret = "Bearer " + secrets.token_urlsafe(32)
        await merchant_store.set_webhook_secret(session, runtime.cipher, merchant.id,
                                                Pos.KOUNTA, secret)  # fmt: skip
    return merchant


async def _store(
    services: Services, merchant: Merchant, account: PosAccount, tokens: TokenSet
) -> Merchant:
    runtime = services.runtime
    stored = Tokens(tokens.access_token, tokens.refresh_token, tokens.expires_at)
    async with runtime.db.transaction() as session:
        await merchant_store.connect_pos(session, runtime.cipher, merchant.id, account, stored)
        loaded = await merchant_store.get_merchant(session, merchant.id)
    assert loaded is not None
    log.info("pos connected", merchant=loaded.name, pos=account.pos.value)
    await repaired(services, loaded.id)
    return loaded


async def repaired(services: Services, merchant_id: str) -> int:
    """A connection (re)made: earnings a broken one refused are owed, not done. They are
    opened again for the worker, which credits them on its next pass."""
    refused = frozenset({ErrorCode.UNAUTHORIZED.value, ErrorCode.POS_DISCONNECTED.value})
    return await services.idempotency.store.reopen_refused(merchant_id, earning.OPERATION,
                                                           refused)  # fmt: skip


def _loyalty_method(methods: list[PaymentMethod]) -> PaymentMethod | None:
    """The one method whose name says loyalty, if exactly one does."""
    named = [m for m in methods if any(word in m.name.lower() for word in LOYALTY_WORDS)]
    return named[0] if len(named) == 1 else None


async def payment_methods(services: Services, merchant: Merchant) -> list[PaymentMethod]:
    """Kounta's payment methods, to choose the loyalty one from."""
    return await services.clients.kounta(merchant).payment_methods()


async def choose_payment_method(services: Services, merchant: Merchant, method_id: str) -> None:
    methods = await payment_methods(services, merchant)
    if method_id not in {m.id for m in methods}:
        raise ValidationError("choose one of the company's payment methods", field="method")
    async with services.runtime.db.transaction() as session:
        await merchant_store.update_settings(session, merchant.id, Pos.KOUNTA,
                                             {"payment_method_id": method_id})  # fmt: skip
    services.memo.clear()


async def disconnect(services: Services, merchant: Merchant, pos: Pos) -> None:
    """The POS's webhooks removed (as far as it answers), its tokens forgotten, the history
    kept: DISCONNECTED. Work pending on it waits until it is connected again."""
    account = merchant.accounts.get(pos)
    if account is None or account.status is ConnectionStatus.DISCONNECTED:
        return
    try:
        if account.status is ConnectionStatus.CONNECTED:
            await subscriptions.remove(services, merchant, pos)
    except GatewayError as failed:
        log.warning("webhooks not removed", merchant=merchant.name, pos=pos.value,
                    reason=failed.message)  # fmt: skip
    async with services.runtime.db.transaction() as session:
        await merchant_store.set_status(session, merchant.id, pos, ConnectionStatus.DISCONNECTED,
                                        "disconnected by the merchant")  # fmt: skip
    services.clients.forget(merchant.id)
    services.memo.clear()


async def new_api_key(services: Services, merchant: Merchant) -> str:
    async with services.runtime.db.transaction() as session:
        return await api_keys.create_api_key(session, merchant.id)


async def finish_invite(services: Services, invitation: Invitation) -> None:
    """The merchant is done: the link stops working."""
    async with services.runtime.db.transaction() as session:
        await store.finish_invite(session, invitation.invite.id, datetime.now(UTC))
