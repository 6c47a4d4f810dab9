"""Webhooks from the POS back ends (docs/architecture.md, "An earning"). They are hints:
nothing in a payload is trusted for money; the order is read back from the POS."""

from __future__ import annotations

from urllib.parse import urlsplit

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import jsonx
from gateway.domain.errors import GatewayError, ValidationError
from gateway.domain.merchant import Merchant, Pos
from gateway.domain.text import check_text
from gateway.services import catalog
from gateway.services.context import Services
from gateway.services.earning import earn_from_order
from gateway.store.crypto import same_secret
from gateway.store.merchants import find_merchant_by_account, list_merchants, webhook_secret

log = structlog.get_logger("gateway.webhooks")


async def kounta(request: Request) -> Response:
    """``orders/completed``: credit the order's member once. 503 asks Kounta to retry."""
    services: Services = request.app.state.services
    depth = services.runtime.settings.max_json_depth
    try:
        order = jsonx.loads(await request.body(), max_depth=depth)
    except jsonx.JSONError as error:
        return _refused(f"the body is not JSON we can read: {error}")
    if not isinstance(order, dict):
        return _refused("expected an order with id and company_id")
    try:
        order_id, company_id = _id(order, "id"), _id(order, "company_id")
    except ValidationError as bad:
        return _refused(f"expected an order with id and company_id: {bad.message}")
    async with services.runtime.db.read() as session:
        merchant = await find_merchant_by_account(session, Pos.KOUNTA, company_id)
        secret = (
            await webhook_secret(session, services.runtime.cipher, merchant.id, Pos.KOUNTA)
            if merchant
            else None
        )
    presented = request.headers.get("authorization", "")
    if merchant is None or not secret or not same_secret(presented, secret):
        return JSONResponse({"error": "unknown company or wrong Authorization"}, status_code=401)
    try:
        earned = await earn_from_order(services.scope(merchant), order_id)
    except GatewayError as failure:
        if failure.transient:
            log.info("kounta order not processed yet", order=order_id, reason=failure.message)
            return JSONResponse({"error": failure.message}, status_code=503)
        log.info("kounta order ignored", order=order_id, reason=failure.message)
        return JSONResponse({"outcome": "ignored", "reason": failure.message})
    return JSONResponse(
        {"outcome": earned.outcome, "order_id": order_id, "points": str(earned.points)}
    )


async def xseries(request: Request) -> Response:
    """``product.update`` and friends (form field ``payload``, a JSON string): forget what
    the cache holds about the object, so the next quote reads the POS again. Nothing here
    moves money, so a forged call can only cost a cache miss."""
    services: Services = request.app.state.services
    form = await request.form()
    raw = form.get("payload")
    try:
        depth = services.runtime.settings.max_json_depth
        payload = jsonx.loads(raw, max_depth=depth) if isinstance(raw, str) else None
    except jsonx.JSONError as error:
        return _refused(f"the form field 'payload' is not JSON: {error}")
    if not isinstance(payload, dict):
        return _refused("expected a form field 'payload' with an object")
    try:
        product_id = _id(payload, "id")
        prefix = form.get("domain_prefix") or payload.get("domain_prefix") or ""
        prefix = check_text(str(prefix), "domain_prefix")
    except ValidationError as bad:
        return _refused(f"the form field 'payload': {bad.message}")
    forgotten = 0
    for merchant in await xseries_merchants(services, prefix):
        scope = services.scope(merchant)
        if any(key in payload for key in PRODUCT_FIELDS):
            await catalog.forget_product(scope, product_id)
        await catalog.forget_account(scope)  # cheap to reload; settings may have moved
        forgotten += 1
    return JSONResponse({"merchants": forgotten})


PRODUCT_FIELDS = ("sku", "handle", "price_book_entries", "supply_price")


async def xseries_merchants(services: Services, domain_prefix: str) -> list[Merchant]:
    """The merchants the webhook can concern: by the account's domain prefix when X-Series
    says it (it is not guaranteed), else every merchant on X-Series."""
    async with services.runtime.db.read() as session:
        everyone = await list_merchants(session)
    found = [m for m in everyone if m.has(Pos.XSERIES)]
    if domain_prefix:
        found = [m for m in found if _host(m).startswith(f"{domain_prefix}.")] or found
    return found


def _refused(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)


def _id(payload: dict[str, object], name: str) -> str:
    """An id in a webhook payload: present, a string or a number, printable, bounded."""
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValidationError(f"{name} must be a non-empty string or an integer", field=name)
    return check_text(str(value), name)


def _host(merchant: Merchant) -> str:
    return urlsplit(merchant.account(Pos.XSERIES).base_url).hostname or ""


routes = [
    Route("/webhooks/kounta", kounta, methods=["POST"]),
    Route("/webhooks/xseries", xseries, methods=["POST"]),
]
