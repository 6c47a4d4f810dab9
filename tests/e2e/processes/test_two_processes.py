"""Two ``gateway serve`` processes on one store (SQLite file, or PostgreSQL in CI): what one
process guarantees with its leases must hold across processes too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.domain.activity import ActivityKind, Movement
from gateway.domain.merchant import PointsSource
from gateway.runtime import Runtime
from gateway.services.context import Services
from gateway.services.points import points_book
from tests.api.test_kounta_adapters import JOHN_KOUNTA, JOHN_ORDER, kounta_order
from tests.demo_ids import JOHN_SMITH
from tests.gateways import ADDON_TOKEN, KOUNTA_COMPANY, Gateway, make_kounta_gateway
from tests.support import GatewayProcess, SandboxHandle

CALLS = 200


@pytest.fixture
def pair(process_env: dict[str, str]) -> Iterator[list[GatewayProcess]]:
    env = {**process_env, "GATEWAY_LEASE_S": "30", "GATEWAY_KOUNTA_DEADLINE_S": "30"}
    servers = [GatewayProcess(env), GatewayProcess(env)]
    try:
        yield [server.wait_ready() for server in servers]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
async def cafe(
    runtime: Runtime, kounta: SandboxHandle, xseries: SandboxHandle
) -> AsyncIterator[Gateway]:
    gw = await make_kounta_gateway(runtime, kounta, "Two Tills", xseries=xseries)
    yield gw
    await gw.client.aclose()


@pytest.fixture
async def ledger_cafe(runtime: Runtime, kounta: SandboxHandle) -> AsyncIterator[Gateway]:
    """Kounta only: the balance is the gateway's own ledger, shared through the store."""
    gw = await make_kounta_gateway(runtime, kounta, "Ledger Cafe")
    assert gw.merchant.points_source is PointsSource.LEDGER
    await points_book(Services(runtime).scope(gw.merchant)).credit(
        JOHN_KOUNTA, Decimal(120), "test:opening",
        Movement(ActivityKind.ADJUSTED, "Opening balance"),
    )  # fmt: skip
    yield gw
    await gw.client.aclose()


async def redeem_urls(server: str, member: dict[str, str], count: int) -> list[str]:
    """``count`` distinct offers of the free coffee (each lookup signs a new one)."""
    params = {**member, "company_id": KOUNTA_COMPANY, "order_id": "111"}
    urls = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(count):
            response = await client.get(
                f"{server}/kounta/{ADDON_TOKEN}/reward-lookup", params=params
            )
            assert response.status_code == 200, response.text
            offer = next(r for r in response.json()["rewards"] if r["id"] == "free-coffee")
            urls.append(offer["redeem_url"].replace("order_id=111", f"order_id={JOHN_ORDER}"))
    return urls


async def call_all(urls: list[str], servers: list[GatewayProcess]) -> list[dict[str, Any]]:
    """Every URL at once, alternately on each process (the path is the same on both)."""
    limits = httpx.Limits(max_connections=CALLS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def call(n: int, url: str) -> dict[str, Any]:
            base = servers[n % len(servers)].url
            path = url.split("/kounta/", 1)[1]
            response = await client.get(f"{base}/kounta/{path}")
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            return answer

        return list(await asyncio.gather(*(call(n, url) for n, url in enumerate(urls))))


def loyalty_payments(kounta: SandboxHandle) -> list[dict[str, Any]]:
    return [p for p in kounta_order(kounta, JOHN_ORDER)["payments"] if p.get("ref")]


async def test_one_redeem_url_called_200_times_on_two_processes_pays_once(
    cafe: Gateway, pair: list[GatewayProcess], kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    member = {"customer_id": JOHN_KOUNTA, "reference_id": JOHN_SMITH}
    (url,) = await redeem_urls(pair[0].url, member, 1)
    answers = await call_all([url] * CALLS, pair)
    assert answers == [{"success": True}] * CALLS
    assert len(loyalty_payments(kounta)) == 1
    customer = xseries.get("/api/customers", id=JOHN_SMITH)["customers"][0]
    assert Decimal(str(customer["loyalty_balance"])) == Decimal(80)  # 120 - 40, once


async def test_offers_worth_more_than_the_balance_never_overspend_it(
    cafe: Gateway, pair: list[GatewayProcess], kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    member = {"customer_id": JOHN_KOUNTA, "reference_id": JOHN_SMITH}
    urls = await redeem_urls(pair[0].url, member, 8)  # 8 x 40 points against 120
    answers = await call_all(urls, pair)
    paid = [answer for answer in answers if answer["success"]]
    assert len(paid) == 3
    assert all("the customer has" in a["error"] for a in answers if not a["success"])
    assert len(loyalty_payments(kounta)) == 3  # payments equal debits
    customer = xseries.get("/api/customers", id=JOHN_SMITH)["customers"][0]
    assert Decimal(str(customer["loyalty_balance"])) == Decimal(0)  # never below zero


async def test_the_gateways_own_ledger_is_never_overspent_across_processes(
    ledger_cafe: Gateway, pair: list[GatewayProcess], kounta: SandboxHandle, runtime: Runtime
) -> None:
    member = {"customer_id": JOHN_KOUNTA, "reference_id": ""}
    urls = await redeem_urls(pair[0].url, member, 8)
    answers = await call_all(urls, pair)
    assert sum(1 for answer in answers if answer["success"]) == 3
    assert len(loyalty_payments(kounta)) == 3
    book = points_book(Services(runtime).scope(ledger_cafe.merchant))
    assert await book.balance(JOHN_KOUNTA) == Decimal(0)
