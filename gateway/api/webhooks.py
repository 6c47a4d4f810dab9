"""Webhooks from the POS back ends (docs/architecture.md, "An earning"). They are hints:
nothing in a payload is trusted for money; the order is read back from the POS."""

from __future__ import annotations

from contextlib import suppress

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import jsonx
from gateway.domain.errors import GatewayError, ValidationError
from gateway.domain.text import check_text
from gateway.services import catalog, customer_cache, merchants
from gateway.services.context import Scope, Services
from gateway.services.kounta_orders import follow_order
from gateway.services.xseries_sales import follow_sale

log = structlog.get_logger("gateway.webhooks")


async def kounta(request: Request) -> Response:
    """``orders/completed``, ``orders/updated``, ``orders/deleted``: the order's points are
    brought to what its state at Kounta says (services/kounta_orders.py): earned once when
    it completed, reversed when refunded, rejected or deleted. 503 asks Kounta to retry."""
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
    presented = request.headers.get("authorization", "")
    merchant = await merchants.kounta_webhook_sender(services, company_id, presented)
    if merchant is None:
        return JSONResponse({"error": "unknown company or wrong Authorization"}, status_code=401)
    # The payload's word is only used to decide whether to ask again later: an order it
    # calls complete but that Kounta still shows open is not complete *yet*.
    hinted_complete = order.get("status") == "COMPLETE"
    try:
        followed = await follow_order(
            services.scope(merchant), order_id, hinted_complete=hinted_complete
        )
    except GatewayError as failure:
        if failure.transient:
            log.info("kounta order not processed yet", order=order_id, reason=failure.message)
            return JSONResponse({"error": failure.message}, status_code=503)
        log.info("kounta order ignored", order=order_id, reason=failure.message)
        return JSONResponse({"outcome": "ignored", "reason": failure.message})
    return JSONResponse(
        {
            "outcome": followed.outcome,
            "order_id": order_id,
            "points": str(followed.points),
            "reversed": str(followed.reversed),
        }
    )


async def xseries(request: Request) -> Response:
    """``sale.update``, ``customer.update``, ``product.update`` (form field ``payload``, a
    JSON string) at the merchant's secret address: X-Series signs nothing, so the secret in
    the path is what says it comes from the store the gateway registered it with. Forget
    what the cache holds about the object, so the next read asks the POS again; a sale the
    gateway paid part of with loyalty is looked at at once (rule 5 when it closes). Nothing
    here moves money on the payload's word."""
    services: Services = request.app.state.services
    merchant = await merchants.xseries_webhook_sender(services, request.path_params["secret"])
    if merchant is None:
        return JSONResponse({"error": "unknown webhook address"}, status_code=401)
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
        object_id = _id(payload, "id")
    except ValidationError as bad:
        return _refused(f"the form field 'payload': {bad.message}")
    scope = services.scope(merchant)
    kind = str(form.get("type") or "")
    if kind == "product.update" or any(key in payload for key in PRODUCT_FIELDS):
        await catalog.forget_product(scope, object_id)
    if kind not in MODELLED_KINDS:
        # None of the kinds the gateway subscribes to tells of the store's settings, payment
        # types or registers (those live by their TTL); a kind it does not know might.
        # Forgetting them on every sale cost each next write three reads.
        await catalog.forget_account(scope)
    # A customer changed (their balance, at the till), or a sale of theirs did: forgetting
    # more than needed costs one read, so the payload's word is enough for this.
    if kind == "customer.update" or "loyalty_balance" in payload:
        await customer_cache.forget(scope, object_id)
    with suppress(ValidationError):  # none named: the sale, read back below, says whose
        await customer_cache.forget(scope, _id(payload, "customer_id"))
    if kind == "sale.update" or "register_sale_products" in payload:
        await _follow_up_sale(scope, object_id)
    return JSONResponse({"received": kind or "update"})


PRODUCT_FIELDS = ("sku", "handle", "price_book_entries", "supply_price")
MODELLED_KINDS = frozenset({"sale.update", "customer.update", "product.update", "inventory.update"})


async def _follow_up_sale(scope: Scope, sale_id: str) -> None:
    try:
        await follow_sale(scope, sale_id)
    except GatewayError as failed:  # the worker looks again later
        log.info("sale follow-up left to the worker", sale=sale_id, reason=failed.message)


def _refused(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)


def _id(payload: dict[str, object], name: str) -> str:
    """An id in a webhook payload: present, a string or a number, printable, bounded."""
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise ValidationError(f"{name} must be a non-empty string or an integer", field=name)
    return check_text(str(value), name)


routes = [
    Route("/webhooks/kounta", kounta, methods=["POST"]),
    Route("/webhooks/xseries/{secret}", xseries, methods=["POST"]),
]
