"""X-Series' OAuth2 endpoints (authorization code): the consent page's address, and the
store's token endpoint (``/api/1.0/token``, form-encoded) that turns a code, or a refresh
token, into tokens. Every refresh rotates the refresh token and revokes the old one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from pydantic import Field

from gateway.pos.fields import OptionalText, Text, parse
from gateway.pos.http import Upstream
from gateway.pos.oauth import TokenSet
from gateway.pos.xseries.models import XModel

POS = "X-Series"
TOKEN_PATH = "/api/1.0/token"  # noqa: S105 - a path, not a secret
# What the gateway asks of a store: reading what it shows, writing sales (createSale,
# payWithLoyalty), webhooks, and the loyalty adjustments (README, "Connecting a shop").
SCOPES = (
    "retailer:read customers:read customers:write products:read payment_types:read "
    "sales:read sales:write webhooks loyalty.transaction.write"
)


class TokenAnswer(XModel):
    access_token: Text
    refresh_token: OptionalText = None
    expires: int | None = None
    expires_in: int | None = None
    domain_prefix: OptionalText = None
    scope: OptionalText = Field(default=None)


@dataclass(frozen=True)
class Grant:
    tokens: TokenSet
    domain_prefix: str | None


def connect_url(
    base: str, *, client_id: str, redirect_uri: str, state: str, scope: str = SCOPES
) -> str:
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
             "state": state, "scope": scope}  # fmt: skip
    return f"{base}?{urlencode(query)}"


def store_url(template: str, domain_prefix: str) -> str:
    """The store's API address: ``{domain_prefix}`` in the template is the store's; a
    template without it is used as it is (a sandbox, a proxy)."""
    return template.replace("{domain_prefix}", domain_prefix).rstrip("/")


async def exchange_code(
    token_endpoint: Upstream, *, code: str, client_id: str, client_secret: str, redirect_uri: str
) -> Grant:
    form = {"grant_type": "authorization_code", "code": code, "client_id": client_id,
            "client_secret": client_secret, "redirect_uri": redirect_uri}  # fmt: skip
    return await _grant(token_endpoint, form)


async def refresh(
    token_endpoint: Upstream, refresh_token: str, *, client_id: str, client_secret: str
) -> TokenSet:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": client_id, "client_secret": client_secret}  # fmt: skip
    return (await _grant(token_endpoint, form)).tokens


async def _grant(token_endpoint: Upstream, form: dict[str, str]) -> Grant:
    response = await token_endpoint.request("POST", TOKEN_PATH, form=form, authenticated=False)
    answer = parse(TokenAnswer, response.data, POS)
    if answer.expires:  # unix time, the field the docs say to use
        expires_at: datetime | None = datetime.fromtimestamp(answer.expires, UTC)
    elif answer.expires_in:
        expires_at = datetime.now(UTC) + timedelta(seconds=answer.expires_in)
    else:
        expires_at = None
    return Grant(TokenSet(answer.access_token, answer.refresh_token, expires_at),
                 answer.domain_prefix)  # fmt: skip
