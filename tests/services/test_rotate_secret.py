"""Rotating GATEWAY_SECRET_KEY without downtime (docs/operations.md, "Rotating
GATEWAY_SECRET_KEY"): the new key first with the old one as previous, then
``gateway rotate-secret``, then the old key dropped."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.cli import app as cli
from gateway.domain import cursors, signed
from gateway.domain.errors import ValidationError
from gateway.domain.merchant import Pos
from gateway.runtime import Runtime
from gateway.services import connect
from gateway.services.context import Services
from gateway.settings import Settings
from gateway.store import merchants as merchant_store
from gateway.store import rotation
from gateway.store.crypto import UndecryptableToken, hash_api_key
from gateway.store.models import ApiKeyRow, PosCredentialRow
from tests.api.test_kounta_adapters import JOHN_ORDER, john
from tests.conftest import XSERIES_TOKEN
from tests.gateways import KOUNTA_ACCESS, KOUNTA_REFRESH, Gateway, KountaPos, reward_url

NEW_KEY = secrets.token_urlsafe(32)
CUSTOMERS = '{ customers(search: "Stark") { firstName loyaltyBalance } }'


def keyed(settings: Settings, key: str, previous: str | None = None) -> Settings:
    """The same deployment with other keys (a fresh object: the keys are cached on it)."""
    return Settings(**{**dict(settings), "secret_key": key, "previous_secret_keys": previous})


def old_key(settings: Settings) -> str:
    assert settings.secret_key is not None
    return settings.secret_key.get_secret_value()


@pytest.fixture
async def rekeyed(both: Gateway) -> AsyncIterator[list[Runtime]]:
    """Runtimes on the same store under other keys, closed after the test."""
    made: list[Runtime] = []
    yield made
    for runtime in made:
        await runtime.aclose()


def on(made: list[Runtime], settings: Settings) -> Runtime:
    runtime = Runtime(settings)
    made.append(runtime)
    return runtime


async def graphql(runtime: Runtime, key: str, query: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        body = {"query": query}
        return await client.post("/graphql", json=body, headers={"Authorization": f"Bearer {key}"})


async def stored_tokens(runtime: Runtime, gw: Gateway) -> dict[Pos, merchant_store.Tokens]:
    async with runtime.db.read() as session:
        return {
            pos: await merchant_store.load_tokens(session, runtime.cipher, gw.merchant.id, pos)
            for pos in (Pos.XSERIES, Pos.KOUNTA)
        }


async def rotate(settings: Settings, previous: str | None = None) -> tuple[int, str]:
    """``gateway rotate-secret`` as an operator runs it, with the new key in the environment."""
    env: Mapping[str, str | None] = {
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_CACHE_URL": settings.cache_url,
        "GATEWAY_SECRET_KEY": NEW_KEY,
        "GATEWAY_PREVIOUS_SECRET_KEYS": previous,
        "GATEWAY_SECRET_KEY_FILE": None,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["rotate-secret"], env=env)
    return result.exit_code, result.output


async def test_stored_tokens_are_readable_before_during_and_after_a_rotation(
    both: Gateway, settings: Settings, rekeyed: list[Runtime]
) -> None:
    expected_kounta = (KOUNTA_ACCESS, KOUNTA_REFRESH)
    before = await stored_tokens(both.runtime, both)
    assert before[Pos.XSERIES].access_token == XSERIES_TOKEN
    assert (before[Pos.KOUNTA].access_token, before[Pos.KOUNTA].refresh_token) == expected_kounta
    answer = (await graphql(both.runtime, both.key, CUSTOMERS)).json()
    assert answer["data"]["customers"], answer

    # During: every process runs the new key, the old one as previous.
    old = old_key(settings)
    during = on(rekeyed, keyed(settings, NEW_KEY, previous=f"{old}"))
    assert await stored_tokens(during, both) == before
    assert (await graphql(during, both.key, CUSTOMERS)).json() == answer  # the POS is reached

    code, out = await rotate(settings, previous=old)
    assert code == 0, out
    assert "Stark Industries X-Series: 1 re-encrypted" in out
    assert "Stark Industries Kounta: 3 re-encrypted" in out
    assert "2 connections: 4 secrets re-encrypted, 0 already under the current key" in out
    assert "GATEWAY_PREVIOUS_SECRET_KEYS may go" in out
    assert await stored_tokens(during, both) == before

    # After: the old key dropped, everything still reads; the old key alone reads nothing.
    after = on(rekeyed, keyed(settings, NEW_KEY))
    assert await stored_tokens(after, both) == before
    assert (await graphql(after, both.key, CUSTOMERS)).json() == answer
    with pytest.raises(UndecryptableToken):
        await stored_tokens(on(rekeyed, keyed(settings, old)), both)

    # Idempotent: a second run finds everything current and changes nothing.
    async with after.db.read() as session:
        rows = (await session.scalars(select(PosCredentialRow))).all()
        stored = [(r.access_token, r.refresh_token, r.webhook_secret) for r in rows]
    code, again = await rotate(settings)
    assert code == 0, again
    assert "2 connections: 0 secrets re-encrypted, 4 already under the current key" in again
    async with after.db.read() as session:
        rows = (await session.scalars(select(PosCredentialRow))).all()
        assert [(r.access_token, r.refresh_token, r.webhook_secret) for r in rows] == stored

    for output in (out, again):
        for secret in (old, NEW_KEY, XSERIES_TOKEN, KOUNTA_ACCESS, KOUNTA_REFRESH, both.key):
            assert secret not in output


async def test_a_token_refreshed_while_its_row_is_rotated_is_kept(
    both: Gateway, settings: Settings, rekeyed: list[Runtime]
) -> None:
    """A serving process renews Kounta's single-use refresh token between the rotation's
    read of the row and its write: the rotation must not put the spent one back."""
    during = on(rekeyed, keyed(settings, NEW_KEY, previous=old_key(settings)))
    async with during.db.read() as session:
        kounta = next(c for c in await rotation.credentials(session) if c.pos == Pos.KOUNTA.value)
        read = await rotation.secrets(session, kounta.id)
    assert read is not None
    fresh = merchant_store.Tokens("fresh-access", "fresh-refresh")
    async with during.db.transaction() as session:
        await merchant_store.save_tokens(session, during.cipher, both.merchant.id, Pos.KOUNTA,
                                         fresh)  # fmt: skip
    async with during.db.transaction() as session:
        assert await rotation.rekey(session, during.cipher, kounta.id, read) is None

    code, out = await rotate(settings, previous=old_key(settings))
    assert code == 0, out
    after = on(rekeyed, keyed(settings, NEW_KEY))
    tokens = (await stored_tokens(after, both))[Pos.KOUNTA]
    assert (tokens.access_token, tokens.refresh_token) == ("fresh-access", "fresh-refresh")


async def test_rotating_without_the_old_key_names_the_fix_and_changes_nothing(
    both: Gateway, settings: Settings, rekeyed: list[Runtime]
) -> None:
    code, out = await rotate(settings)  # the old key forgotten: nothing reads the tokens
    assert code == 1
    assert "2 connections hold a secret no configured key reads" in out
    assert "GATEWAY_PREVIOUS_SECRET_KEYS" in out
    assert "Stark Industries Kounta: UNREADABLE" in out
    assert old_key(settings) not in out and NEW_KEY not in out
    assert (await stored_tokens(both.runtime, both))[Pos.KOUNTA].access_token == KOUNTA_ACCESS


async def test_api_keys_stay_hashed_and_keep_working_across_a_rotation(
    both: Gateway, settings: Settings, rekeyed: list[Runtime]
) -> None:
    async with both.runtime.db.read() as session:
        hashes = set((await session.scalars(select(ApiKeyRow.key_hash))).all())
    assert hash_api_key(both.key) in hashes and both.key not in hashes

    code, out = await rotate(settings, previous=old_key(settings))
    assert code == 0, out

    after = on(rekeyed, keyed(settings, NEW_KEY))
    async with after.db.read() as session:
        assert set((await session.scalars(select(ApiKeyRow.key_hash))).all()) == hashes
    response = await graphql(after, both.key, "{ merchant { name } }")
    assert response.json() == {"data": {"merchant": {"name": "Stark Industries"}}}


async def test_links_handed_out_before_a_rotation_work_until_the_old_key_is_dropped(
    both: Gateway, settings: Settings, rekeyed: list[Runtime]
) -> None:
    """A redeem URL a till holds and a connect link a merchant holds are signed with the key
    of their day: read with a previous key while it is listed, refused once it is gone."""
    url = reward_url(await john(KountaPos(both)), "free-coffee")
    invitation = await connect.invite(Services(both.runtime), "Stark Industries")

    during = on(rekeyed, keyed(settings, NEW_KEY, previous=old_key(settings)))
    opened = await connect.open_invite(Services(during), invitation.token)
    assert opened.invite.id == invitation.invite.id
    async with _client(during) as client:
        till = KountaPos(Gateway(client, during, both.merchant, both.key))
        assert await till.redeem(url, JOHN_ORDER) == {"success": True}

    after = on(rekeyed, keyed(settings, NEW_KEY))
    with pytest.raises(connect.ConnectRefused):
        await connect.open_invite(Services(after), invitation.token)
    async with _client(after) as client:
        response = await client.get(url.replace("order_id=111", f"order_id={JOHN_ORDER}"))
    assert response.json() == {"success": False, "error": "this reward link is not valid"}


def test_cursors_and_signed_values_read_with_previous_keys_only_while_listed() -> None:
    old, new = b"o" * 32, b"n" * 32
    at = datetime(2026, 7, 1, tzinfo=UTC)
    cursor = cursors.encode(old, "m:member", at, "row-1")
    assert cursors.decode(new, "m:member", cursor, previous=[old]) == (at, "row-1")
    with pytest.raises(ValidationError):
        cursors.decode(new, "m:member", cursor)
    token = signed.sign(old, "state", "s-1")
    assert signed.unsign(new, "state", token, previous=[old]) == "s-1"
    assert signed.unsign(new, "state", token) is None


def _client(runtime: Runtime) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(runtime=runtime)), base_url="http://gw"
    )
