"""Webhooks from the POS back ends (DESIGN §6). They are hints: nothing in a payload is
trusted for money; the order is read back from the POS."""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import jsonx
from gateway.domain.errors import GatewayError
from gateway.domain.merchant import Pos
from gateway.services.context import Services
from gateway.services.earning import earn_from_order
from gateway.store.crypto import same_secret
from gateway.store.merchants import find_merchant_by_account, webhook_secret

log = structlog.get_logger("gateway.webhooks")


async def kounta(request: Request) -> Response:
    """``orders/completed``: credit the order's member once. 503 asks Kounta to retry."""
    services: Services = request.app.state.services
    try:
        order = jsonx.loads(await request.body())
    except ValueError:
        return JSONResponse({"error": "the body is not JSON"}, status_code=400)
    if not isinstance(order, dict) or not order.get("id") or not order.get("company_id"):
        return JSONResponse({"error": "expected an order with id and company_id"}, status_code=400)
    order_id, company_id = str(order["id"]), str(order["company_id"])
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


routes = [Route("/webhooks/kounta", kounta, methods=["POST"])]
