"""The webhooks the gateway registers at each POS, so their receivers fire in a real shop
(README, "Webhooks"): Kounta ``KOUNTA_TOPICS`` at ``/webhooks/kounta`` with the
merchant's secret ``Authorization`` header; X-Series ``sale.update``, ``customer.update``
and ``product.update`` at ``/webhooks/xseries/{secret}``, the secret in the path since
X-Series signs nothing. Each is checked idempotently when a POS is connected and at
start-up (as background work), and removed when it is disconnected.
"""

from __future__ import annotations

import secrets

import structlog

from gateway import priority
from gateway.domain.errors import GatewayError
from gateway.domain.merchant import Merchant, Pos
from gateway.services.context import Services
from gateway.store import merchants as store

log = structlog.get_logger("gateway.webhooks")

KOUNTA_PATH = "/webhooks/kounta"
# Only ``orders/completed`` is documented; the other two are inferred from the documented
# ``{resource}/{created|updated}`` pattern and the API's ``/orders/deleted`` list, and kept
# here alone (docs/pos-contracts.md). Reconciliation finds what they would have said if
# they are named otherwise.
KOUNTA_TOPICS = ("orders/completed", "orders/updated", "orders/deleted")
XSERIES_PATH = "/webhooks/xseries"
XSERIES_TYPES = ("sale.update", "customer.update", "product.update")


def _public(services: Services) -> str | None:
    return services.runtime.settings.public_url


async def ensure_kounta(services: Services, merchant: Merchant) -> str:
    """Register (or correct) ``KOUNTA_TOPICS``; safe to repeat. Returns what it did:
    created, updated, unchanged, or skipped (no GATEWAY_PUBLIC_URL)."""
    base = _public(services)
    if base is None:
        log.warning("kounta webhook not registered: GATEWAY_PUBLIC_URL is not set",
                    merchant=merchant.name)  # fmt: skip
        return "skipped"
    address = base + KOUNTA_PATH
    async with services.runtime.db.read() as session:
        secret = await store.webhook_secret(session, services.runtime.cipher, merchant.id,
                                            Pos.KOUNTA)  # fmt: skip
    headers = {"Authorization": secret or ""}
    client = services.clients.kounta(merchant)
    outcome = "unchanged"
    hooks = {hook.topic: hook for hook in await client.list_webhooks() if hook.address == address}
    for topic in KOUNTA_TOPICS:
        hook = hooks.get(topic)
        if hook is None:
            await client.create_webhook(topic, address, headers)
            outcome = "created"
        elif hook.headers.get("Authorization") != headers["Authorization"]:
            await client.update_webhook(hook.id, headers)
            outcome = "updated" if outcome == "unchanged" else outcome
    return outcome


async def xseries_secret(services: Services, merchant: Merchant) -> str:
    """The merchant's secret path segment: its id, then a random part (created once)."""
    runtime = services.runtime
    async with runtime.db.transaction() as session:
        secret = await store.webhook_secret(session, runtime.cipher, merchant.id, Pos.XSERIES)
        if secret is None:
            secret = f"{merchant.id}.{secrets.token_urlsafe(24)}"
            await store.set_webhook_secret(session, runtime.cipher, merchant.id, Pos.XSERIES,
                                           secret)  # fmt: skip
    return secret


async def ensure_xseries(services: Services, merchant: Merchant) -> str:
    """Register the three webhook types at the merchant's secret address; safe to repeat."""
    base = _public(services)
    if base is None:
        log.warning("x-series webhooks not registered: GATEWAY_PUBLIC_URL is not set",
                    merchant=merchant.name)  # fmt: skip
        return "skipped"
    address = f"{base}{XSERIES_PATH}/{await xseries_secret(services, merchant)}"
    client = await services.clients.xseries(merchant)
    have = {(hook.type, hook.url) for hook in await client.list_webhooks() if hook.active}
    missing = [kind for kind in XSERIES_TYPES if (kind, address) not in have]
    for kind in missing:
        await client.create_webhook(kind, address)
    return "created" if missing else "unchanged"


async def remove(services: Services, merchant: Merchant, pos: Pos) -> None:
    """The gateway's own webhooks at ``pos`` (those at its address), before disconnecting."""
    base = _public(services)
    if base is None:
        return
    if pos is Pos.KOUNTA:
        kounta = services.clients.kounta(merchant)
        for hook in await kounta.list_webhooks():
            if hook.address.startswith(base + KOUNTA_PATH):
                await kounta.delete_webhook(hook.id)
        return
    xseries = await services.clients.xseries(merchant)
    for found in await xseries.list_webhooks():
        if found.url.startswith(base + XSERIES_PATH + "/"):
            await xseries.delete_webhook(found.id)


async def ensure_all(services: Services) -> None:
    """At start-up: every connected merchant's webhooks, best effort (a POS outage must not
    keep the gateway from starting), as background work (``gateway/priority.py``)."""
    with priority.background():
        async with services.runtime.db.read() as session:
            merchants = await store.list_merchants(session)
        for merchant in merchants:
            for pos, ensure in ((Pos.KOUNTA, ensure_kounta), (Pos.XSERIES, ensure_xseries)):
                if not merchant.has(pos):
                    continue
                try:
                    outcome = await ensure(services, merchant)
                except GatewayError as error:
                    log.warning("webhook check failed", merchant=merchant.name, pos=pos.value,
                                error=error.message)  # fmt: skip
                else:
                    log.info("webhooks", merchant=merchant.name, pos=pos.value, outcome=outcome)
