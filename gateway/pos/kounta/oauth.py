"""Kounta's OAuth2 endpoints: the consent page's address, and the token endpoint
(``/v1/token``, form-encoded) that turns a code, or a refresh token, into tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from gateway.pos.fields import parse
from gateway.pos.http import Upstream
from gateway.pos.kounta.models import TokenPair
from gateway.pos.oauth import TokenSet

POS = "Kounta"
TOKEN_PATH = "/v1/token"  # noqa: S105 - a path, not a secret


def authorize_url(base: str, *, client_id: str, redirect_uri: str, state: str) -> str:
    query = {"client_id": client_id, "redirect_uri": redirect_uri, "state": state,
             "response_type": "code"}  # fmt: skip
    return f"{base}?{urlencode(query)}"


async def exchange_code(
    token_endpoint: Upstream, *, code: str, client_id: str, client_secret: str, redirect_uri: str
) -> TokenSet:
    form = {"grant_type": "authorization_code", "code": code, "client_id": client_id,
            "client_secret": client_secret, "redirect_uri": redirect_uri}  # fmt: skip
    return await _tokens(token_endpoint, form, None)


async def refresh(
    token_endpoint: Upstream, refresh_token: str, *, client_id: str, client_secret: str
) -> TokenSet:
    """A new pair; an answer without a new refresh token keeps the old one
    (docs/pos-contracts.md)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": client_id, "client_secret": client_secret}  # fmt: skip
    return await _tokens(token_endpoint, form, refresh_token)


async def _tokens(token_endpoint: Upstream, form: dict[str, str], old: str | None) -> TokenSet:
    response = await token_endpoint.request("POST", TOKEN_PATH, form=form, authenticated=False)
    pair = parse(TokenPair, response.data, POS)
    expires_at = None
    if pair.expires_in:
        expires_at = datetime.now(UTC) + timedelta(seconds=pair.expires_in)
    return TokenSet(pair.access_token, pair.refresh_token or old, expires_at)
