"""OAuth 2's authorization-code flow, as both POS sandboxes play it for the apps they serve.

X-Series and Kounta both let an app act for a store through OAuth 2: the merchant approves
the app on the POS's consent page, the browser comes back to the app's ``redirect_uri`` with
a ``code``, and the app exchanges the code, with its client credentials, for an access token
and a refresh token, which it refreshes later. This module is that authorization server,
written once; what differs between the two POS (the consent path, X-Series' scopes, the token
answer's fields, the extra redirect parameters) the sandbox passes in.

Where the real servers' behaviour is unknown the choice is the strict one, never kinder
(docs/pos-contracts.md, "OAuth and webhooks (sandbox behaviour)"): a code is single-use
(any exchange attempt spends it), expires after ``CODE_LIFETIME_S``, and is bound to the app
and the ``redirect_uri`` it was issued for; every refresh rotates, revoking the refresh token
it was given, so a refresh whose answer was lost leaves the client with a revoked token only
(X-Series documents the rotation; Kounta's refresh tokens are single-use). Nothing here
imports from ``gateway`` outside ``gateway.sandbox``.
"""

from __future__ import annotations

import html
import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

__all__ = [
    "CODE_LIFETIME_S",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "AccessToken",
    "AuthorizationServer",
    "Grant",
    "Issued",
    "OAuthError",
    "form_pairs",
]

# The gateway's development defaults (its settings' kounta_client_id and
# kounta_client_secret), so that a gateway started without OAuth settings talks to a
# sandbox started without them. Repeated here: a sandbox imports nothing of the gateway's.
DEFAULT_CLIENT_ID = "gateway-sandbox"
DEFAULT_CLIENT_SECRET = "gateway-sandbox-secret"  # noqa: S105 (a public development value)
# How long a code may wait for its exchange. Neither POS documents it; RFC 6749 (4.1.2)
# recommends at most ten minutes.
CODE_LIFETIME_S = 600
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SPENT = "refresh token is invalid or already used"
GRANT_TYPES = ("authorization_code", "refresh_token")

Clock = Callable[[], float]
ScopeParser = Callable[[str | None], frozenset[str]]
"""A POS's scope rule: space-separated names to a set (None: every scope); raises
ValueError naming an unknown one."""


class OAuthError(Exception):
    """A token endpoint's refusal, in RFC 6749's words (``invalid_grant``...)."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description


class ConsentRefused(Exception):
    """A consent request the server will not show nor redirect for: a 400 page."""


def error_response(exc: OAuthError) -> Response:
    content = {"error": exc.error}
    if exc.description is not None:
        content["error_description"] = exc.description
    return JSONResponse(content, status_code=exc.status, headers=NO_STORE)


@dataclass(frozen=True)
class Grant:
    """What the merchant approved: for which app and, where the POS has scopes, which."""

    client_id: str
    scopes: frozenset[str] | None = None


@dataclass(frozen=True)
class AccessToken:
    grant: Grant
    expires_at: float

    def expired(self, now: float) -> bool:
        return self.expires_at <= now


@dataclass(frozen=True)
class Code:
    grant: Grant
    redirect_uri: str
    expires_at: float


@dataclass(frozen=True)
class Issued:
    access_token: str
    refresh_token: str
    expires_in: int
    expires_at: float
    grant: Grant


class Tokens:
    """What the server has issued and the apps it knows; forgotten whole on a reset."""

    def __init__(self, clients: Mapping[str, str]) -> None:
        self.clients = dict(clients)
        self.codes: dict[str, Code] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, Grant] = {}

    def issue(self, grant: Grant, now: float, lifetime_s: int) -> Issued:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = AccessToken(grant, now + lifetime_s)
        self.refresh[refresh] = grant
        return Issued(access, refresh, lifetime_s, now + lifetime_s, grant)

    def preissue(self, access: str, refresh: str, grant: Grant, expires_at: float) -> None:
        """A pair the fixtures hand out (Kounta's demo tokens)."""
        self.access[access] = AccessToken(grant, expires_at)
        self.refresh[refresh] = grant

    def new_code(self, grant: Grant, redirect_uri: str, now: float) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = Code(grant, redirect_uri, now + CODE_LIFETIME_S)
        return code

    def redeem(self, code: str, client_id: str, redirect_uri: str, now: float) -> Grant:
        """Any attempt spends the code: presented once, it is gone, even when refused."""
        found = self.codes.pop(code, None)
        if found is None:
            raise OAuthError(400, "invalid_grant", "code is invalid or already used")
        if found.expires_at <= now:
            raise OAuthError(400, "invalid_grant", "code has expired")
        if found.grant.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "code was issued to another client")
        if found.redirect_uri != redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match the authorization")
        return found.grant

    def rotate(self, refresh: str, client_id: str) -> Grant:
        """The refresh token given is revoked; the caller issues the new pair."""
        grant = self.refresh.get(refresh)
        if grant is None or grant.client_id != client_id:
            raise OAuthError(400, "invalid_grant", SPENT)
        del self.refresh[refresh]
        return grant

    def lookup(self, token: str) -> AccessToken | None:
        return self.access.get(token)

    def expire_all(self, now: float) -> int:
        for token, access in self.access.items():
            self.access[token] = AccessToken(access.grant, min(access.expires_at, now))
        return len(self.access)

    def live(self, now: float) -> dict[str, list[str]]:
        return {
            "access_tokens": [t for t, access in self.access.items() if not access.expired(now)],
            "refresh_tokens": list(self.refresh),
        }


@dataclass(frozen=True)
class ConsentRequest:
    client_id: str
    redirect_uri: str
    state: str
    scope: str | None
    scopes: frozenset[str] | None

    def hidden_fields(self) -> dict[str, str]:
        fields = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
        }
        if self.scope is not None:
            fields["scope"] = self.scope
        return fields


class AuthorizationServer:
    """The consent page, the token endpoint and the test controls of one sandbox.

    ``scopes``: the POS's scope rule, when it has scopes (then ``scope`` is required at
    consent and the tokens carry exactly what was asked); ``redirect_extras``: parameters
    added to the redirect after approval (X-Series' ``domain_prefix``); ``answer``: the POS's
    token answer; ``redirect_uris``: when given, the only ones the app registered.
    """

    def __init__(
        self,
        *,
        name: str,
        consent_path: str,
        exchange_path: str,
        client_id: str,
        client_secret: str,
        lifetime_s: int,
        clock: Clock,
        answer: Callable[[Issued], dict[str, Any]],
        scopes: ScopeParser | None = None,
        redirect_extras: Callable[[], Mapping[str, str]] = dict,
        redirect_uris: Iterable[str] | None = None,
    ) -> None:
        if lifetime_s < 0:
            raise ValueError("the token lifetime must be 0 or more seconds")
        self.name = name
        self.consent_path = consent_path
        self.exchange_path = exchange_path
        self.client_id = client_id
        self.client_secret = client_secret
        self.lifetime_s = lifetime_s
        self.clock = clock
        self.answer = answer
        self.scopes = scopes
        self.redirect_extras = redirect_extras
        self.redirect_uris = None if redirect_uris is None else frozenset(redirect_uris)
        for uri in self.redirect_uris or ():
            if not _absolute_url(uri):
                raise ValueError(f"redirect URI {uri!r} is not an absolute http(s) URL")
        self.tokens = Tokens({client_id: client_secret})

    def reset(self, preissued: Iterable[tuple[str, str, float]] = ()) -> None:
        """Forget every code, token and added app; then hand out the fixtures' pairs."""
        self.tokens = Tokens({self.client_id: self.client_secret})
        for access, refresh, expires_at in preissued:
            self.tokens.preissue(access, refresh, Grant(self.client_id), expires_at)

    def routes(self, guard: Callable[[Any], Any] = lambda handler: handler) -> list[Route]:
        """``guard`` wraps the token endpoint in the sandbox's own request checks."""
        return [
            Route(self.consent_path, self.consent, methods=["GET", "POST"]),
            Route(self.exchange_path, guard(self.token), methods=["POST"]),
        ]

    def admin_routes(self) -> list[Route]:
        return [
            Route("/_sandbox/oauth/issue", self._issue, methods=["POST"]),
            Route("/_sandbox/oauth/expire", self._expire, methods=["POST"]),
            Route("/_sandbox/oauth/tokens", self._live, methods=["GET"]),
            Route("/_sandbox/oauth/clients", self._add_client, methods=["POST"]),
        ]

    # -- the consent page --

    async def consent(self, request: Request) -> Response:
        try:
            if request.method == "GET":
                pairs = request.query_params.multi_items()
            else:
                if _media_type(request) != FORM:
                    raise ConsentRefused("the form must be sent form-encoded")
                pairs = form_pairs(await request.body())
            params = _single(pairs)
            asked = self._consent_request(params)
            if request.method == "GET":
                return HTMLResponse(self._page(asked), headers=NO_STORE)
            decision = params.get("decision")
            if decision not in ("approve", "deny"):
                raise ConsentRefused("decision must be approve or deny")
        except ConsentRefused as exc:
            return HTMLResponse(_refusal_page(self.name, str(exc)), 400, headers=NO_STORE)
        if decision == "deny":
            return _redirect(asked.redirect_uri, {"error": "access_denied", "state": asked.state})
        grant = Grant(asked.client_id, asked.scopes)
        code = self.tokens.new_code(grant, asked.redirect_uri, self.clock())
        extras = dict(self.redirect_extras())
        return _redirect(asked.redirect_uri, {"code": code, **extras, "state": asked.state})

    def _consent_request(self, params: Mapping[str, str]) -> ConsentRequest:
        """Checked in this order, each a 400 page, never a redirect: an app or a redirect
        URI the server cannot vouch for must not receive anything (RFC 6749, 4.1.2.1)."""
        client_id = params.get("client_id", "")
        if not client_id:
            raise ConsentRefused("client_id is required")
        if client_id not in self.tokens.clients:
            raise ConsentRefused(f"client_id {client_id!r} is not a known app")
        redirect_uri = params.get("redirect_uri", "")
        if not _absolute_url(redirect_uri):
            raise ConsentRefused("redirect_uri must be an absolute http or https URL")
        if self.redirect_uris is not None and redirect_uri not in self.redirect_uris:
            raise ConsentRefused("redirect_uri is not registered for this app")
        if params.get("response_type") != "code":
            raise ConsentRefused("response_type must be code")
        scope, scopes = None, None
        if self.scopes is not None:
            scope = params.get("scope", "")
            if not scope.strip():
                raise ConsentRefused("scope is required: the scopes the app asks for")
            try:
                scopes = self.scopes(scope)
            except ValueError as exc:
                raise ConsentRefused(f"scope: {exc}") from None
        state = params.get("state", "")
        if not state:
            raise ConsentRefused("state is required: it protects the app's callback (CSRF)")
        return ConsentRequest(client_id, redirect_uri, state, scope, scopes)

    def _page(self, asked: ConsentRequest) -> str:
        esc = html.escape
        hidden = "\n".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
            for k, v in asked.hidden_fields().items()
        )
        scopes = ""
        if asked.scopes is not None:
            items = "".join(f"<li><code>{esc(s)}</code></li>" for s in sorted(asked.scopes))
            scopes = f"<p>It asks for these scopes:</p>\n<ul>{items}</ul>"
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(self.name)}: connect an app</title></head>
<body>
<h1>{esc(self.name)}</h1>
<p>The app <strong>{esc(asked.client_id)}</strong> asks to access your account.</p>
{scopes}
<form method="post" action="{esc(self.consent_path)}">
{hidden}
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>
"""

    # -- the token endpoint --

    async def token(self, request: Request) -> Response:
        """Form-encoded, as both POS document it; checked in RFC 6749's order: the request,
        the grant type, the client, then the grant."""
        try:
            if _media_type(request) != FORM:
                raise OAuthError(400, "invalid_request", "The body must be form-encoded")
            form = dict(form_pairs(await request.body()))
            grant_type = form.get("grant_type")
            if not grant_type:
                raise OAuthError(400, "invalid_request", "grant_type is required")
            if grant_type not in GRANT_TYPES:
                raise OAuthError(400, "unsupported_grant_type")
            client_id = self._client(form)
            now = self.clock()
            if grant_type == "authorization_code":
                code, redirect_uri = _required(form, "code"), _required(form, "redirect_uri")
                grant = self.tokens.redeem(code, client_id, redirect_uri, now)
            else:
                grant = self.tokens.rotate(_required(form, "refresh_token"), client_id)
        except OAuthError as exc:
            return error_response(exc)
        issued = self.tokens.issue(grant, now, self.lifetime_s)
        return JSONResponse(self.answer(issued), headers=NO_STORE)

    def _client(self, form: Mapping[str, str]) -> str:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        expected = self.tokens.clients.get(client_id)
        if expected is None or not secrets.compare_digest(secret.encode(), expected.encode()):
            raise OAuthError(401, "invalid_client")
        return client_id

    # -- test controls --

    async def _issue(self, request: Request) -> Response:
        """A pair without the browser step: ``{"expires_in": N, "scopes": "..."}``, both
        optional (``scopes`` where the POS has them; default every scope)."""
        try:
            body = _admin_body(await request.body())
            allowed = {"expires_in", "scopes"} if self.scopes is not None else {"expires_in"}
            unknown = sorted(set(body) - allowed)
            if unknown:
                raise ValueError(f"unknown keys: {', '.join(unknown)}")
            expires_in = body.get("expires_in", self.lifetime_s)
            if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 0:
                raise ValueError("expires_in must be an integer >= 0")
            scopes = None
            if self.scopes is not None:
                names = body.get("scopes")
                if names is not None and not isinstance(names, str):
                    raise ValueError("scopes must be a string of space-separated scopes")
                scopes = self.scopes(names)
        except ValueError as exc:
            return JSONResponse({"error": "Invalid request", "details": str(exc)}, 400)
        issued = self.tokens.issue(Grant(self.client_id, scopes), self.clock(), expires_in)
        return JSONResponse(self.answer(issued), headers=NO_STORE)

    async def _expire(self, request: Request) -> Response:
        return JSONResponse({"expired": self.tokens.expire_all(self.clock())})

    async def _live(self, request: Request) -> Response:
        """The tokens still good now: what a client that lost an answer is left with."""
        return JSONResponse(self.tokens.live(self.clock()))

    async def _add_client(self, request: Request) -> Response:
        """Another app of the same store, until the next reset."""
        try:
            body = _admin_body(await request.body())
            if set(body) != {"client_id", "client_secret"}:
                raise ValueError('the body must be {"client_id": ..., "client_secret": ...}')
            client_id, secret = body["client_id"], body["client_secret"]
            if not (isinstance(client_id, str) and client_id and isinstance(secret, str)):
                raise ValueError("client_id and client_secret must be strings")
            if not secret:
                raise ValueError("client_secret must not be empty")
            if client_id in self.tokens.clients:
                raise ValueError(f"client_id {client_id!r} is already known")
        except ValueError as exc:
            return JSONResponse({"error": "Invalid client", "details": str(exc)}, 400)
        self.tokens.clients[client_id] = secret
        return JSONResponse({"clients": sorted(self.tokens.clients)})


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """A form-encoded body's fields, in order, repeats kept; raises OAuthError when it
    cannot be read."""
    try:
        return parse_qsl(body.decode(), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError(400, "invalid_request", "The body is not valid form data") from None


def _single(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """RFC 6749 (3.1): a parameter sent twice is refused, not resolved by a guess."""
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise ConsentRefused(f"{key} is given more than once")
        params[key] = value
    return params


def _required(form: Mapping[str, str], key: str) -> str:
    value = form.get(key)
    if not value:
        raise OAuthError(400, "invalid_request", f"{key} is required")
    return value


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def _absolute_url(value: str) -> bool:
    """http or https, with a host and no fragment (RFC 6749, 3.1.2)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.fragment


def _redirect(uri: str, params: Mapping[str, str]) -> Response:
    """303, so the browser follows with a GET; the URI's own query is kept."""
    parts = urlsplit(uri)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    location = urlunsplit(parts._replace(query=urlencode(query)))
    return RedirectResponse(location, status_code=303, headers=NO_STORE)


def _refusal_page(name: str, message: str) -> str:
    esc = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(name)}: bad request</title></head>
<body><h1>{esc(name)}</h1><p>This authorization request cannot be processed: {esc(message)}.</p>
</body></html>
"""


def _admin_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("the body must be JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data
