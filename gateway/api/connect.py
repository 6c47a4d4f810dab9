"""The connect page a merchant opens from their link (README, "Connecting a shop").

Thin: read the request, call ``gateway/services/connect.py``, render a template. Plain
HTML forms, no JavaScript, readable on a phone. The signed invite in the path is what
lets a browser act for the merchant, so it is the page's only credential: every form posts
back under it (a page elsewhere cannot forge one without knowing it), no page is cached
or sends it on as a referrer, and the request log shows it masked
(``gateway/observability.py``). Whatever the services refuse is a page with their message
and a status code, never a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from gateway.domain.errors import GatewayError
from gateway.domain.merchant import ConnectionStatus, Merchant, Pos, PosAccount
from gateway.services import connect
from gateway.services.connect import ConnectRefused, Invitation, LinkGone
from gateway.services.context import Services

log = structlog.get_logger("gateway.connect")
Endpoint = Callable[[Request], Awaitable[Response]]

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.api", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)

# Every page: never stored (each holds the invite, one an API key), never framed, never
# a Referer carrying the invite to a POS, no script of any kind.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
SLUG = {Pos.XSERIES: "xseries", Pos.KOUNTA: "kounta"}
# The one-line notices a redirect back to the page may ask for: fixed texts, nothing echoed.
NOTICES = {
    ("connected", "xseries"): "X-Series is connected.",
    ("connected", "kounta"): "Kounta is connected.",
    ("disconnected", "xseries"): "X-Series is disconnected.",
    ("disconnected", "kounta"): "Kounta is disconnected.",
    ("chosen", "payment-method"): "The loyalty payment method is saved.",
}


@dataclass(frozen=True)
class PosView:
    """One POS as the page shows it: its state in words and what can be done."""

    slug: str
    label: str
    state: str  # CONNECTED, RECONNECT_NEEDED, DISCONNECTED or NOT_CONNECTED
    detail: str
    action: str  # the label of the button that goes to the consent page
    can_disconnect: bool

    @property
    def urgent(self) -> bool:
        """Connecting is what the merchant should do next (not a mere reconnect)."""
        return self.state != ConnectionStatus.CONNECTED.value


def pos_view(pos: Pos, account: PosAccount | None) -> PosView:
    slug, label = SLUG[pos], pos.label
    if account is None:
        return PosView(slug, label, "NOT_CONNECTED", "Not connected yet.", f"Connect {label}",
                       can_disconnect=False)  # fmt: skip
    if account.status is ConnectionStatus.CONNECTED:
        detail = (
            f"Connected. Access valid until {_when(account.expires_at)} (renewed automatically)."
            if account.expires_at
            else "Connected."
        )
        return PosView(slug, label, account.status.value, detail, f"Reconnect {label}",
                       can_disconnect=True)  # fmt: skip
    if account.status is ConnectionStatus.RECONNECT_NEEDED:
        why = account.status_reason or "the connection stopped working"
        return PosView(slug, label, account.status.value, f"Reconnect needed: {why}.",
                       f"Reconnect {label}", can_disconnect=True)  # fmt: skip
    return PosView(slug, label, account.status.value, "Disconnected.", f"Connect {label} again",
                   can_disconnect=False)  # fmt: skip


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _base(request: Request) -> str:
    """Where this gateway was reached: the services use it when GATEWAY_PUBLIC_URL is unset."""
    return str(request.base_url).rstrip("/")


def _page(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    status: int = 200,
) -> Response:
    return templates.TemplateResponse(request, name, dict(context or {}), status_code=status,
                                      headers=HEADERS)  # fmt: skip


def _refused(request: Request, refused: GatewayError, status: int = 400) -> Response:
    """A refusal's page: 410 for a link that was good once, 503 when a POS could not answer,
    else ``status``; with a way back when the link is known."""
    if isinstance(refused, LinkGone):
        status = 410
    elif refused.transient:
        status = 503
    back = refused.invitation if isinstance(refused, ConnectRefused) else None
    link = f"/connect/{back.token}" if back else None
    return _page(request, "refused.html", {"message": refused.message, "back": link}, status)


async def _open(request: Request) -> Invitation:
    """The link's invitation; a ``ConnectRefused`` (shown with 404, or 410) if it is none."""
    return await connect.open_invite(_services(request), request.path_params["invite"])


def _back(invitation: Invitation, notice: str, value: str) -> Response:
    return RedirectResponse(f"/connect/{invitation.token}?{notice}={value}", status_code=303,
                            headers=HEADERS)  # fmt: skip


# --------------------------------------------------------------------------- the page


async def page(request: Request) -> Response:
    services = _services(request)
    try:
        invitation = await _open(request)
    except ConnectRefused as refused:
        return _refused(request, refused, 404)
    merchant = invitation.merchant
    methods, methods_error = await _methods(services, merchant)
    notice = next(
        (text for (key, value), text in NOTICES.items() if request.query_params.get(key) == value),
        None,
    )
    context = {
        "merchant": merchant,
        "link": f"/connect/{invitation.token}",
        "systems": [pos_view(pos, merchant.accounts.get(pos)) for pos in Pos],
        "kounta_connected": merchant.has(Pos.KOUNTA),
        "kounta_urls": _addon_urls(services, request) if merchant.has(Pos.KOUNTA) else [],
        "needs_payment_method": _needs_payment_method(merchant),
        "methods": methods,
        "methods_error": methods_error,
        "notice": notice,
    }
    return _page(request, "connect.html", context)


def _addon_urls(services: Services, request: Request) -> list[tuple[str, str]]:
    """The add-on's two URLs under the names its Loyalty tab gives them."""
    urls = connect.kounta_urls(services.runtime.settings, _base(request))
    if not urls:
        return []
    return [("Customer Search URL", urls["Kounta search"]), ("Rewards URL", urls["Kounta rewards"])]


async def _methods(
    services: Services, merchant: Merchant
) -> tuple[list[tuple[str, str]], str | None]:
    """Kounta's payment methods (id, name) when one must be chosen, or why they could not
    be read (the page still shows the rest)."""
    if not _needs_payment_method(merchant):
        return [], None
    try:
        found = await connect.payment_methods(services, merchant)
    except GatewayError as failed:
        return [], failed.message
    return [(method.id, method.name or method.id) for method in found], None


def _needs_payment_method(merchant: Merchant) -> bool:
    """Kounta is connected and no method's name said loyalty clearly enough to take it."""
    if not merchant.has(Pos.KOUNTA):
        return False
    return not merchant.accounts[Pos.KOUNTA].settings.get("payment_method_id")


# --------------------------------------------------------------------------- OAuth


def _start(pos: Pos) -> Endpoint:
    async def start(request: Request) -> Response:
        try:
            invitation = await _open(request)
        except ConnectRefused as refused:
            return _refused(request, refused, 404)
        consent = await connect.start(_services(request), invitation, pos, _base(request))
        return RedirectResponse(consent, status_code=303, headers=HEADERS)

    return start


def _callback(pos: Pos) -> Endpoint:
    async def callback(request: Request) -> Response:
        params = request.query_params
        try:
            invitation = await connect.finish(
                _services(request), pos, state=params.get("state", ""), code=params.get("code"),
                error=params.get("error"), domain_prefix=params.get("domain_prefix"),
                base_url=_base(request),
            )  # fmt: skip
        except GatewayError as refused:
            log.info("connect callback refused", pos=pos.value, reason=refused.message)
            return _refused(request, refused)
        return _back(invitation, "connected", SLUG[pos])

    return callback


# --------------------------------------------------------------------------- the forms


def _disconnect(pos: Pos) -> Endpoint:
    async def disconnect(request: Request) -> Response:
        try:
            invitation = await _open(request)
        except ConnectRefused as refused:
            return _refused(request, refused, 404)
        await connect.disconnect(_services(request), invitation.merchant, pos)
        return _back(invitation, "disconnected", SLUG[pos])

    return disconnect


async def payment_method(request: Request) -> Response:
    try:
        invitation = await _open(request)
    except ConnectRefused as refused:
        return _refused(request, refused, 404)
    if not invitation.merchant.has(Pos.KOUNTA):
        first = ConnectRefused("connect Kounta first", invitation=invitation)
        return _refused(request, first)
    form = await request.form()
    chosen = form.get("method")
    try:
        await connect.choose_payment_method(_services(request), invitation.merchant,
                                            chosen if isinstance(chosen, str) else "")  # fmt: skip
    except GatewayError as refused:
        back = ConnectRefused(refused.message, invitation=invitation)
        return _refused(request, back, 503 if refused.transient else 400)
    return _back(invitation, "chosen", "payment-method")


async def api_key(request: Request) -> Response:
    """The key is in the answer to the POST itself, never in a URL: shown once."""
    try:
        invitation = await _open(request)
    except ConnectRefused as refused:
        return _refused(request, refused, 404)
    key = await connect.new_api_key(_services(request), invitation.merchant)
    context = {"merchant": invitation.merchant, "key": key,
               "link": f"/connect/{invitation.token}"}  # fmt: skip
    return _page(request, "api_key.html", context)


async def finish(request: Request) -> Response:
    try:
        invitation = await _open(request)
    except ConnectRefused as refused:
        return _refused(request, refused, 404)
    await connect.finish_invite(_services(request), invitation)
    return _page(request, "finished.html", {"merchant": invitation.merchant})


routes = [
    # The callbacks first: their paths would otherwise read as an invite and a POS.
    Route("/connect/xseries/callback", _callback(Pos.XSERIES), methods=["GET"]),
    Route("/connect/kounta/callback", _callback(Pos.KOUNTA), methods=["GET"]),
    Route("/connect/{invite}", page, methods=["GET"]),
    *(Route(f"/connect/{{invite}}/{SLUG[pos]}", _start(pos), methods=["GET"]) for pos in Pos),
    *(
        Route(f"/connect/{{invite}}/{SLUG[pos]}/disconnect", _disconnect(pos), methods=["POST"])
        for pos in Pos
    ),
    Route("/connect/{invite}/kounta/payment-method", payment_method, methods=["POST"]),
    Route("/connect/{invite}/api-key", api_key, methods=["POST"]),
    Route("/connect/{invite}/finish", finish, methods=["POST"]),
]
