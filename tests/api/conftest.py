"""A gateway app (httpx ASGI transport) with a merchant on the X-Series sandbox."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Merchant, Pos
from gateway.runtime import Runtime
from gateway.sandbox.xseries import DEMO_FIXTURES
from gateway.services.merchants import XSeriesCredentials, add_merchant
from gateway.store.api_keys import create_api_key
from tests.conftest import XSERIES_TOKEN
from tests.support import SandboxHandle


@dataclass
class Gateway:
    client: httpx.AsyncClient
    runtime: Runtime
    merchant: Merchant
    key: str

    async def post(self, query: str, variables: dict[str, Any] | None = None,
                   *, key: str | None = None) -> httpx.Response:  # fmt: skip
        headers = {"Authorization": f"Bearer {key or self.key}"}
        body = {"query": query, "variables": variables or {}}
        return await self.client.post("/graphql", json=body, headers=headers)

    async def data(self, query: str, variables: dict[str, Any] | None = None,
                   *, key: str | None = None) -> dict[str, Any]:  # fmt: skip
        """The ``data`` of a request that must not fail at the top level."""
        response = await self.post(query, variables, key=key)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def id(self, kind: Kind, local_id: str, pos: Pos = Pos.XSERIES) -> str:
        return ids.encode(kind, pos, self.merchant.id, local_id)


async def make_gateway(runtime: Runtime, xseries: SandboxHandle, name: str) -> Gateway:
    merchant = await add_merchant(
        runtime, name=name, xseries=XSeriesCredentials(xseries.url, XSERIES_TOKEN)
    )
    async with runtime.db.transaction() as session:
        key = await create_api_key(session, merchant.id)
    app = create_app(runtime=runtime)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    return Gateway(client, runtime, merchant, key)


@pytest.fixture
async def gateway(runtime: Runtime, xseries: SandboxHandle) -> AsyncIterator[Gateway]:
    gw = await make_gateway(runtime, xseries, "Stark Industries")
    yield gw
    await gw.client.aclose()


def demo_fixtures(**config: Any) -> dict[str, Any]:
    """The sandbox's demo data with account config changes (e.g. a tax-inclusive store)."""
    data: dict[str, Any] = json.loads(DEMO_FIXTURES.read_text())
    data = copy.deepcopy(data)
    data["config"].update(config)
    return data
