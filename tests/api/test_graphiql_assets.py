"""GraphiQL's page takes every script and style from the gateway, never from a CDN, and each
file is the one Strawberry's page names (its integrity hash matches). The page working in a
real browser with every other site blocked: tests/e2e/browser/test_graphiql.py."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

from gateway.app import create_app
from gateway.runtime import Runtime
from gateway.settings import Environment, Settings
from tests.conftest import Backend

HTML = {"Accept": "text/html"}


@pytest.fixture
def backend() -> Backend:
    """No store is read: one is enough."""
    return Backend("sqlite-memory", "", "memory://")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"environment": Environment.DEVELOPMENT})


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client


class Assets(HTMLParser):
    """Every script's and stylesheet's address, with its integrity hash."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and named.get("src"):
            self.found.append((named["src"] or "", named.get("integrity")))
        if tag == "link" and named.get("rel") == "stylesheet":
            self.found.append((named.get("href") or "", named.get("integrity")))


async def test_the_graphiql_page_loads_every_asset_from_the_gateway(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert "https://" not in page.text  # (an SVG icon names its http:// namespace: no load)
    parser = Assets()
    parser.feed(page.text)
    assert len(parser.found) == 7, parser.found  # react, react-dom, js-cookie, GraphiQL's...
    for address, integrity in parser.found:
        assert address.startswith("/graphql/static/"), address
        served = await client.get(address)
        assert served.status_code == 200, address
        assert integrity is not None and integrity.startswith("sha384-"), address
        digest = base64.b64encode(hashlib.sha384(served.content).digest()).decode()
        assert integrity == f"sha384-{digest}", f"{address} is not the file Strawberry names"
