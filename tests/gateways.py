"""A gateway app (httpx ASGI transport) with a merchant on the X-Series sandbox."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Merchant, PointsSource, Pos
from gateway.domain.rewards import Reward, RewardKind
from gateway.runtime import Runtime
from gateway.sandbox.xseries import DEMO_FIXTURES
from gateway.services import rewards
from gateway.services.context import Services
from gateway.services.merchants import KountaCredentials, XSeriesCredentials, add_merchant
from gateway.settings import Settings
from gateway.store.api_keys import create_api_key
from tests.conftest import XSERIES_TOKEN
from tests.demo_ids import GOLD_WATCH, MUG, VIP_GROUP
from tests.support import SandboxHandle, ServerThread, free_port


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

    async def xseries_hook(self) -> str:
        """The merchant's secret X-Series webhook path (made on first use)."""
        from gateway.services.subscriptions import XSERIES_PATH, xseries_secret

        return f"{XSERIES_PATH}/{await xseries_secret(Services(self.runtime), self.merchant)}"


async def make_gateway(runtime: Runtime, xseries: SandboxHandle, name: str) -> Gateway:
    merchant = await add_merchant(
        Services(runtime), name=name, xseries=XSeriesCredentials(xseries.url, XSERIES_TOKEN)
    )
    xseries.clear_stats()  # a test counts its own calls, not onboarding's (its loyalty probe)
    async with runtime.db.transaction() as session:
        key = await create_api_key(session, merchant.id)
    app = create_app(runtime=runtime)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    return Gateway(client, runtime, merchant, key)


@pytest.fixture
def public_port() -> int:
    """Where ``live`` serves: a module overrides ``settings`` to make it the gateway's
    ``public_url`` when the POS must call it back (webhooks, OAuth redirects)."""
    return free_port()


@pytest.fixture
def live(runtime: Runtime, settings: Settings, public_port: int) -> Iterator[ServerThread]:
    """The gateway as a real server in its own thread and loop, on the test's store."""
    server = ServerThread(create_app(settings), port=public_port, lifespan=True).start()
    yield server
    server.stop()


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


AIRPORT_OUTLET = "0adfd74a-153e-11e9-fa42-67b5781c0110"
AIRPORT_REGISTER = "0adfd74a-153e-11e9-fa42-67b5781c0011"
AIRPORT_BOOK = "0adfd74a-153e-11e9-fa42-67b5781c0402"


def two_outlets(**config: Any) -> dict[str, Any]:
    """The demo data with a second outlet, "Airport", and its register; its price book
    gives the mug 3 for everybody and the gold watch 500 for VIPs there."""
    data = demo_fixtures(**config)
    main = data["registers"][0]
    data["registers"].append(
        {**main, "id": AIRPORT_REGISTER, "name": "Airport", "outlet_id": AIRPORT_OUTLET}
    )
    airport = {"price_book_id": AIRPORT_BOOK, "price_book_name": "Airport", "type": "",
               "outlet_id": AIRPORT_OUTLET, "outlet_name": "Airport"}  # fmt: skip
    vip = {"customer_group_id": VIP_GROUP, "customer_group_name": "VIP"}
    for product_id, entry_id, value, group in (
        (MUG, "0adfd74a-153e-11e9-fa42-67b5781c0601", 3, {}),
        (GOLD_WATCH, "0adfd74a-153e-11e9-fa42-67b5781c0602", 500, vip),
    ):
        product = next(p for p in data["products"] if p["id"] == product_id)
        base = product["price_book_entries"][0]  # the general book's entry
        product["price_book_entries"].append(
            {**base, **airport, **group, "id": entry_id, "loyalty_value": value}
        )
    return data


# --------------------------------------------------------------------------- Kounta

KOUNTA_COMPANY = "5678"
KOUNTA_ACCESS = "demo-kounta-access"  # the pair in the Kounta sandbox's demo fixtures
KOUNTA_REFRESH = "demo-kounta-refresh"
LOYALTY_METHOD = "12"
ADDON_TOKEN = "test-addon-token"  # tests/conftest.py settings


async def make_kounta_gateway(
    runtime: Runtime,
    kounta: SandboxHandle,
    name: str,
    *,
    xseries: SandboxHandle | None = None,
    points_source: PointsSource | None = None,
) -> Gateway:
    """A merchant on Kounta (and X-Series when given), with a small catalogue."""
    services = Services(runtime)
    merchant = await add_merchant(
        services,
        name=name,
        xseries=XSeriesCredentials(xseries.url, XSERIES_TOKEN) if xseries else None,
        kounta=KountaCredentials(
            kounta.url, KOUNTA_COMPANY, KOUNTA_ACCESS, KOUNTA_REFRESH, LOYALTY_METHOD
        ),
        points_source=points_source,
    )
    if xseries:
        xseries.clear_stats()  # a test counts its own calls, not onboarding's
    scope = services.scope(merchant)
    await rewards.add_reward(
        scope,
        Reward("free-coffee", "Free coffee", RewardKind.PAYMENT, Decimal(40), Decimal("4.60")),
    )
    await rewards.add_reward(
        scope,
        Reward("ten-off", "10% off", RewardKind.PERCENT_DISCOUNT, Decimal(100), Decimal(10)),
    )
    async with runtime.db.transaction() as session:
        key = await create_api_key(session, merchant.id)
    app = create_app(runtime=runtime)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    return Gateway(client, runtime, merchant, key)


@pytest.fixture
async def both(
    runtime: Runtime, xseries: SandboxHandle, kounta: SandboxHandle
) -> AsyncIterator[Gateway]:
    """A merchant on both POS whose points live at X-Series."""
    gw = await make_kounta_gateway(runtime, kounta, "Stark Industries", xseries=xseries)
    yield gw
    await gw.client.aclose()


class KountaPos:
    """Calls the gateway the way Kounta's POS does (README, "Kounta")."""

    def __init__(self, gateway: Gateway, token: str = ADDON_TOKEN) -> None:
        self.client = gateway.client
        self.token = token

    async def search(self, keyword: str, **params: str) -> httpx.Response:
        query = {"keyword": keyword, "site_id": "123", "company_id": KOUNTA_COMPANY,
                 "order_id": "111", **params}  # fmt: skip
        return await self.client.get(f"/kounta/{self.token}/customer-search", params=query)

    async def lookup(self, customer_id: str, reference_id: str, **params: str) -> httpx.Response:
        query = {"customer_id": customer_id, "reference_id": reference_id, "site_id": "123",
                 "company_id": KOUNTA_COMPANY, "order_id": "111", **params}  # fmt: skip
        return await self.client.get(f"/kounta/{self.token}/reward-lookup", params=query)

    async def redeem(
        self, redeem_url: str, order_id: str, *, quantity: str | None = None, post: bool = False
    ) -> dict[str, Any]:
        """Kounta swaps the placeholder order id for the real one, then calls the URL."""
        assert "order_id=111" in redeem_url
        url = redeem_url.replace("order_id=111", f"order_id={order_id}")
        if quantity is not None:
            url += f"&quantity={quantity}"
        response = await (self.client.post(url) if post else self.client.get(url))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def reward_url(member: dict[str, Any], reward_id: str) -> str:
    url: str = next(r["redeem_url"] for r in member["rewards"] if r["id"] == reward_id)
    return url
