"""The URLs Kounta's POS calls: customer search, reward lookup, redemption (README,
"Kounta"; what is inferred of them: docs/pos-contracts.md).

Thin: authenticate, find the merchant, call the services, shape Kounta's JSON. The
details Kounta's published text leaves open are each decided in ONE place here, so a
correction is a one-line change: the reward lookup answers the single member record
(``member_record``), redemption accepts GET and POST (``routes``), ``points_required`` is a
JSON number and ``current_points`` a string, each spelt one way for one value
(``points_required``, ``current_points``), and a member without an email address gets one
that cannot be delivered to (``email_address``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import jsonx
from gateway.api import kounta_openapi
from gateway.api.deadlines import answer_within
from gateway.api.kounta_models import (
    KountaAnswer,
    KountaError,
    KountaMember,
    KountaMembers,
    KountaReward,
    RedeemDone,
    RedeemRefused,
)
from gateway.domain.errors import GatewayError, NotFound, Transient, ValidationError
from gateway.domain.merchant import Pos
from gateway.domain.money import cents_within, parse_amount
from gateway.domain.signed import same_secret
from gateway.domain.text import check_text
from gateway.services import members, merchants, rewards
from gateway.services.context import Scope, Services
from gateway.services.customers import clean_keyword
from gateway.services.merchants import by_kounta_company
from gateway.services.redeem import redeem
from gateway.services.redemption_records import RedemptionRequest

log = structlog.get_logger("gateway.kounta")

MAX_MEMBERS = 20


class KountaJSON(Response):
    """An answer built from its model (``gateway/api/kounta_models.py``), the published
    contract's source, so nothing is sent that the contract does not describe."""

    media_type = "application/json"

    def __init__(self, answer: KountaAnswer, status_code: int = 200) -> None:
        super().__init__(answer.body(), status_code=status_code)

    def render(self, content: Any) -> bytes:
        return jsonx.dumps(content)


def error(message: str, status: int) -> Response:
    return KountaJSON(KountaError(error=message), status_code=status)


def refused(message: str, status: int = 200) -> Response:
    return KountaJSON(RedeemRefused(error=message), status_code=status)


# --------------------------------------------------------------------------- shapes


# A domain that can never deliver mail (RFC 2606), for members without an address.
NO_EMAIL_DOMAIN = "no-email.invalid"
_MAILBOX = re.compile(r"[A-Za-z0-9._-]{1,64}")


def points_required(points: Decimal) -> Decimal:
    """A JSON number (Kounta's page; the obsolete spec says an integer), the same text for
    the same value wherever it comes from: 120, 120.00 and 120.00000 are all ``120``, and
    12.50 is ``12.5`` (docs/pos-contracts.md)."""
    if points == points.to_integral_value():
        return Decimal(int(points))
    return points.normalize()


def current_points(balance: Decimal) -> str:
    """A string of two places (Kounta's page), rounded down as a variable reward's maximum
    is (``Reward.offered_points``): the balance shown is what can be spent."""
    return f"{cents_within(balance):.2f}"


def email_address(member: members.Member) -> str:
    """Kounta requires ``email_address``. A member without one is still a member the café
    must find, so they get an address that names them and can never be delivered to
    (docs/pos-contracts.md)."""
    email = (member.customer.email or "").strip()
    if "@" in email:
        return email
    mailbox = member.id if _MAILBOX.fullmatch(member.id) else _digest(member.id)
    return f"member-{mailbox}@{NO_EMAIL_DOMAIN}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def reward_record(
    offer: rewards.RewardOffer, label: str, redeem_base: str, order_id: str
) -> KountaReward:
    reward = offer.reward
    return KountaReward(
        id=reward.id,
        title=reward.title,
        terms=reward.terms or "",
        points_required=points_required(offer.points_required),
        points_label=label,
        action_label=reward.action_label or "Redeem",
        variable_quantity=reward.variable_quantity,
        # The order_id Kounta sent (a placeholder) goes back unchanged; Kounta swaps it.
        redeem_url=f"{redeem_base}/kounta/redeem/{offer.offer}?order_id={quote(order_id)}",
    )


def member_record(
    member: members.Member,
    offers: list[rewards.RewardOffer],
    label: str,
    redeem_base: str,
    order_id: str,
) -> KountaMember:
    customer = member.customer
    points = current_points(customer.balance)
    return KountaMember(
        id=member.id,
        first_name=customer.first_name or customer.display_name or member.id,
        last_name=customer.last_name or "",
        email_address=email_address(member),
        current_points=points,
        points_label=label,
        intro_text=f"{customer.display_name}: {points} {label}",
        params={label: points, "Programme": "active" if customer.loyalty_enabled else "off"},
        rewards=[
            reward_record(offer, label, redeem_base, order_id)
            for offer in offers
            if offer.available
        ],
    )


# --------------------------------------------------------------------------- handlers


Handler = Callable[[Request, Scope], Awaitable[Response]]


def _merchant_call(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Add-on token (constant time), then the merchant by ``company_id``, then the call."""

    async def endpoint(request: Request) -> Response:
        services: Services = request.app.state.services
        expected = services.runtime.settings.kounta_addon_token
        if expected is None:
            return error("the Kounta add-on is not configured on this gateway", 503)
        if not same_secret(request.path_params["token"], expected.get_secret_value()):
            return error("unknown add-on token", 401)
        try:
            check_ids(request.query_params)
        except ValidationError as bad:
            return error(bad.message, 400)
        company_id = request.query_params.get("company_id", "").strip()
        if not company_id:
            return error("company_id is required", 400)
        merchant = await by_kounta_company(services, company_id)
        if merchant is None:
            return error("this company has not installed the loyalty add-on", 404)
        seconds = services.runtime.settings.kounta_deadline_s
        try:
            return await answer_within(seconds, handler(request, services.scope(merchant)))
        except GatewayError as failure:
            return error(failure.message, _status(failure))

    return endpoint


# The ids Kounta sends, checked (bounded, printable) before any is looked up or echoed.
ID_PARAMETERS = ("company_id", "site_id", "order_id", "customer_id", "reference_id")


def check_ids(params: Mapping[str, str]) -> None:
    for name in ID_PARAMETERS:
        check_text(params.get(name, ""), name)


def _status(failure: GatewayError) -> int:
    """Kounta's POS shows the message; the status says whether trying again may help."""
    if isinstance(failure, Transient):
        return 503
    return 404 if isinstance(failure, NotFound) else 400


def _redeem_base(request: Request, scope: Scope) -> str:
    return scope.runtime.settings.public_url or str(request.base_url).rstrip("/")


async def customer_search(request: Request, scope: Scope) -> Response:
    keyword = request.query_params.get("keyword", "")
    order_id = request.query_params.get("order_id", "")
    if not keyword.strip():
        return KountaJSON(KountaMembers(members={}))
    found = await members.search_members(scope, clean_keyword(keyword, "keyword"), MAX_MEMBERS)
    base, label = _redeem_base(request, scope), scope.merchant.points_label
    records: dict[str, KountaMember] = {}
    for member in found:
        offers = await rewards.offers_for(scope, member)
        records[member.id] = member_record(member, offers, label, base, order_id)
    return KountaJSON(KountaMembers(members=records))


async def reward_lookup(request: Request, scope: Scope) -> Response:
    params = request.query_params
    customer_id, reference_id = params.get("customer_id", ""), params.get("reference_id", "")
    if not customer_id and not reference_id:
        return error("customer_id or reference_id is required", 400)
    member = await members.member_from_kounta(scope, customer_id, reference_id)
    offers = await rewards.offers_for(scope, member)
    base, label = _redeem_base(request, scope), scope.merchant.points_label
    return KountaJSON(member_record(member, offers, label, base, params.get("order_id", "")))


async def redeem_offer(request: Request) -> Response:
    """Kounta calls the redeem_url with the real order id (and ``quantity`` for a
    variable reward); the answer is always 200 with ``success`` true or false."""
    services: Services = request.app.state.services
    token = request.path_params["offer"]
    try:
        params = await _params(request, services.runtime.settings.max_json_depth)
    except UnreadableBody as unreadable:
        return refused(str(unreadable), status=400)
    try:
        offer = rewards.read_offer(services.runtime, token)
        merchant = await merchants.by_id(services, offer.merchant_id)
        if merchant is None or not merchant.has(Pos.KOUNTA):
            return refused("this store no longer offers rewards")
        check_ids(params)
        order_id = params.get("order_id", "").strip()
        if not order_id:
            return refused("order_id is missing")
        request_ = RedemptionRequest(
            key=hashlib.sha256(token.encode()).hexdigest(),
            key_space="offer",
            reward_id=offer.reward_id,
            member_id=offer.member_id,
            target_pos=Pos.KOUNTA,
            target_id=order_id,
            quantity=_quantity(params.get("quantity")),
        )
        seconds = services.runtime.settings.kounta_deadline_s
        await answer_within(seconds, redeem(services.scope(merchant), request_))
    except GatewayError as failure:
        log.info("kounta redemption refused", code=failure.code.value, reason=failure.message)
        return refused(failure.message)
    return KountaJSON(RedeemDone())


class UnreadableBody(ValueError):
    """A POST body that cannot be read. It is refused, not ignored: it may have carried the
    quantity, and redeeming without it would take another amount than the one asked for."""


async def _params(request: Request, max_depth: int) -> dict[str, str]:
    """Query parameters, and for a POST any form or JSON body fields as well."""
    params = dict(request.query_params)
    if request.method != "POST":
        return params
    content_type = request.headers.get("content-type", "")
    if "json" in content_type:
        try:
            body = jsonx.loads(await request.body() or b"{}", max_depth=max_depth)
        except jsonx.JSONError as error:
            raise UnreadableBody(f"the body is not JSON we can read: {error}") from None
        if not isinstance(body, dict):
            raise UnreadableBody("the body must be a JSON object of parameters")
        params.update(
            {name: _body_text(name, value) for name, value in body.items() if value is not None}
        )
    elif "form" in content_type:
        form = await request.form()
        params.update({name: _body_text(name, value) for name, value in form.items()})
    return params


def _body_text(name: str, value: object) -> str:
    """A body field as the text a query parameter would have been."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)  # 1e3 stays "1E+3", which the number grammar refuses
    raise UnreadableBody(f"{name} must be a string or a number")


def _quantity(value: str | None) -> Decimal | None:
    if value is None or value == "":
        return None
    return parse_amount(value, "quantity")


routes = [
    Route(kounta_openapi.PATH, kounta_openapi.openapi, methods=["GET"]),
    Route("/kounta/{token}/customer-search", _merchant_call(customer_search), methods=["GET"]),
    Route("/kounta/{token}/reward-lookup", _merchant_call(reward_lookup), methods=["GET"]),
    # Kounta's text does not say which method it uses on a redeem_url: accept both.
    Route("/kounta/redeem/{offer}", redeem_offer, methods=["GET", "POST"]),
]
