"""Staying connected: OAuth tokens that expire and rotate, a lost answer from a token
endpoint, a connection that must be renewed and the work that waits for it, the webhooks a
connection registers. The merchant connects through the sandboxes' own consent pages."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import ConnectionStatus, Merchant, PointsSource, Pos
from gateway.domain.rewards import Reward, RewardKind
from gateway.runtime import Runtime
from gateway.services import connect, rewards
from gateway.services.context import Services
from gateway.services.recovery import recover_once
from gateway.settings import Settings
from gateway.store import merchants as merchant_store
from gateway.store.api_keys import create_api_key
from tests.api.test_kounta_adapters import JOHN_KOUNTA, JOHN_ORDER, kounta_order, xseries_balance
from tests.demo_ids import CASH, JOHN_SMITH, JOHNNY, JOHNNY_SALE, TONY
from tests.gateways import KOUNTA_COMPANY, reward_url
from tests.sandbox.consent import read_form, redirect_params
from tests.support import GatewayProcess, SandboxHandle, ServerThread, until

XSERIES_TOKEN_POST = "POST /api/1.0/token"


@pytest.fixture
def settings(
    settings: Settings, public_port: int, xseries: SandboxHandle, kounta: SandboxHandle
) -> Settings:
    """The gateway at a real address, its OAuth pointed at the sandboxes."""
    return settings.model_copy(
        update={
            "public_url": f"http://127.0.0.1:{public_port}",
            "xseries_connect_url": f"{xseries.url}/connect",
            "xseries_api_url": xseries.url,
            "kounta_authorize_url": f"{kounta.url}/authorize",
            "kounta_api_url": kounta.url,
        }
    )


async def consent(url: str) -> dict[str, str]:
    """The merchant's browser at the POS's consent page: read it, Approve, and where it is
    sent back (the callback's parameters)."""
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(url)
        assert page.status_code == 200, page.text
        form = read_form(page.text)
        action = url.split("?", 1)[0] if not form.action else httpx.URL(url).join(form.action)
        answer = await browser.post(str(action), data=form.submission("approve"))
    return redirect_params(answer)


async def connect_by_oauth(runtime: Runtime, name: str, *pos: Pos) -> Merchant:
    services = Services(runtime)
    invitation = await connect.invite(services, name, points_source=PointsSource.XSERIES)
    for each in pos:
        back = await consent(await connect.start(services, invitation, each, "http://unused"))
        invitation = await connect.finish(
            services, each, state=back["state"], code=back.get("code"), error=back.get("error"),
            domain_prefix=back.get("domain_prefix"), base_url="http://unused",
        )  # fmt: skip
    return invitation.merchant


async def merchant_now(runtime: Runtime, merchant: Merchant) -> Merchant:
    async with runtime.db.read() as session:
        found = await merchant_store.get_merchant(session, merchant.id)
    assert found is not None
    return found


async def stored_refresh_token(runtime: Runtime, merchant: Merchant) -> str | None:
    async with runtime.db.read() as session:
        tokens = await merchant_store.load_tokens(session, runtime.cipher, merchant.id,
                                                  Pos.XSERIES)  # fmt: skip
    return tokens.refresh_token


def live_tokens(handle: SandboxHandle) -> dict[str, Any]:
    tokens: dict[str, Any] = handle.get("/_sandbox/oauth/tokens")
    return tokens


async def graphql(url: str, key: str, query: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{url}/graphql", json={"query": query}, headers={"Authorization": f"Bearer {key}"}
        )
    body: dict[str, Any] = response.json()
    return body


async def api_key(runtime: Runtime, merchant: Merchant) -> str:
    async with runtime.db.transaction() as session:
        return await create_api_key(session, merchant.id)


CONNECTIONS = "{ merchant { connections { pos status reason } } }"
TONY_QUERY = '{ customers(search: "Stark") { posId loyaltyBalance } }'


async def test_an_expired_token_is_refreshed_once_with_rotation_by_two_processes_at_once(
    runtime: Runtime, xseries: SandboxHandle, process_env: dict[str, str]
) -> None:
    merchant = await connect_by_oauth(runtime, "Rotating Shop", Pos.XSERIES)
    first = await stored_refresh_token(runtime, merchant)
    assert first and first in live_tokens(xseries)["refresh_tokens"]
    key = await api_key(runtime, merchant)
    env = {**process_env, **_oauth_env(runtime.settings)}
    servers = [GatewayProcess(env), GatewayProcess(env)]
    try:
        for server in servers:
            server.wait_ready()
        xseries.post("/_sandbox/oauth/expire", {})  # every access token it issued is dead
        answers = await asyncio.gather(
            *(graphql(server.url, key, TONY_QUERY) for server in servers for _ in range(5))
        )
    finally:
        for server in servers:
            server.stop()
    assert all("errors" not in answer for answer in answers), answers
    assert all(a["data"]["customers"][0]["posId"] == TONY for a in answers)
    assert xseries.count(XSERIES_TOKEN_POST) == 2  # the code exchange, then one refresh
    second = await stored_refresh_token(runtime, merchant)
    assert second and second != first
    live = live_tokens(xseries)["refresh_tokens"]
    assert first not in live and second in live  # rotated: the old one is revoked


def _oauth_env(settings: Settings) -> dict[str, str]:
    return {
        "GATEWAY_XSERIES_CONNECT_URL": settings.xseries_connect_url,
        "GATEWAY_XSERIES_API_URL": settings.xseries_api_url,
        "GATEWAY_KOUNTA_AUTHORIZE_URL": settings.kounta_authorize_url,
        "GATEWAY_KOUNTA_API_URL": settings.kounta_api_url,
    }


async def test_a_lost_refresh_answer_is_retried_once_then_reconnect_needed_and_work_resumes(
    runtime: Runtime, xseries: SandboxHandle, kounta: SandboxHandle, live: ServerThread
) -> None:
    """The refresh is applied at X-Series but its answer is lost; the one retry presents the
    old refresh token, which the rotation revoked: the connection must be renewed. A
    redemption whose points must come back meanwhile waits, and settles once reconnected."""
    merchant = await connect_by_oauth(runtime, "Lost Refresh", Pos.XSERIES, Pos.KOUNTA)
    key = await api_key(runtime, merchant)
    services = Services(runtime)
    coffee = Reward("free-coffee", "Free coffee", RewardKind.PAYMENT, Decimal(40), Decimal("4.60"))
    await rewards.add_reward(services.scope(merchant), coffee)

    # A Kounta redemption whose payment did not land: its points must be given back.
    lookup = await _lookup(live.url)
    orders = f"/v1/companies/{KOUNTA_COMPANY}/orders/"
    kounta.faults(status=503, fail_next=1, method="POST", path=orders)
    url = reward_url(lookup, "free-coffee").replace("order_id=111", f"order_id={JOHN_ORDER}")
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(url)).json()["success"] is False
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")

    xseries.post("/_sandbox/oauth/expire", {})
    xseries.faults(status=503, fail_next=1, method="POST", path="/api/1.0/token", after=True)
    answer = await graphql(live.url, key, TONY_QUERY)
    assert answer["errors"][0]["extensions"]["code"] == "POS_DISCONNECTED"
    assert xseries.count(XSERIES_TOKEN_POST) == 3  # exchange, the lost refresh, one retry
    shown = (await graphql(live.url, key, CONNECTIONS))["data"]["merchant"]["connections"]
    assert {c["pos"]: c["status"] for c in shown} == {"XSERIES": "RECONNECT_NEEDED",
                                                      "KOUNTA": "CONNECTED"}  # fmt: skip
    assert (await merchant_now(runtime, merchant)).accounts[Pos.XSERIES].status is (
        ConnectionStatus.RECONNECT_NEEDED
    )

    report = await recover_once(services)  # the points cannot come back while disconnected
    assert report.still_failing and xseries_balance(xseries, JOHN_SMITH) == Decimal("80")
    await connect_by_oauth(runtime, "Lost Refresh", Pos.XSERIES)  # the merchant reconnects
    services.clients.forget(merchant.id)
    await _age(runtime)
    report = await recover_once(services)
    assert report.finished and xseries_balance(xseries, JOHN_SMITH) == Decimal("120")
    assert kounta_order(kounta, JOHN_ORDER)["payments"] == []
    accounts = (await merchant_now(runtime, merchant)).accounts
    assert all(a.status is ConnectionStatus.CONNECTED for a in accounts.values())


async def _lookup(base: str) -> dict[str, Any]:
    params = {"customer_id": JOHN_KOUNTA, "reference_id": JOHN_SMITH,
              "company_id": KOUNTA_COMPANY, "order_id": "111"}  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{base}/kounta/test-addon-token/reward-lookup", params=params)
    member: dict[str, Any] = response.json()
    return member


async def _age(runtime: Runtime) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from gateway.store.models import RedemptionRow

    async with runtime.db.transaction() as session:
        await session.execute(
            update(RedemptionRow).values(updated_at=datetime.now(UTC) - timedelta(hours=1))
        )


async def test_connecting_xseries_registers_three_webhooks_that_reach_the_gateway(
    runtime: Runtime, xseries: SandboxHandle, live: ServerThread
) -> None:
    """The store's sale change reaches the gateway: Johnny paid 5 of his on-account sale with
    loyalty through the gateway, the till takes the rest in cash and closes it, and the
    sale.update delivery makes the gateway keep rule 5 at once (not at the worker's next
    look): the part paid with loyalty earns nothing."""
    merchant = await connect_by_oauth(runtime, "Hooked Shop", Pos.XSERIES)
    key = await api_key(runtime, merchant)
    hooks = xseries.get("/api/webhooks")
    prefix = f"{live.url}/webhooks/xseries/{merchant.id}."
    assert sorted(h["type"] for h in hooks if h["url"].startswith(prefix)) == [
        "customer.update", "product.update", "sale.update"]  # fmt: skip
    assert len({h["url"] for h in hooks}) == 1

    sale_id = ids.encode(Kind.SALE, Pos.XSERIES, merchant.id, JOHNNY_SALE)
    paid = await graphql(live.url, key, PAY_FIVE.replace("SALE", sale_id))
    assert paid["data"]["payWithLoyalty"]["__typename"] == "PayWithLoyaltySuccess", paid
    assert xseries_balance(xseries, JOHNNY) == Decimal("7")
    stored = xseries.get(f"/api/register_sales/{JOHNNY_SALE}")["register_sales"][0]
    body = {k: v for k, v in stored.items()
            if k not in ("totals", "taxes", "state", "register_sale_attributes")}  # fmt: skip
    body["status"] = "ONACCOUNT_CLOSED"
    body["register_sale_payments"] = [*stored["register_sale_payments"],
                                      {"retailer_payment_type_id": CASH, "amount": 13}]  # fmt: skip
    assert xseries.post("/api/register_sales", body).status_code == 200  # the till closes it
    # X-Series credits the line's 2; 5 of 23 was paid with loyalty: 2 x 18/23 = 1.57 earned.
    await until(lambda: xseries_balance(xseries, JOHNNY) == Decimal("8.57"),
                what="the sale.update delivery reaching the gateway")  # fmt: skip

    def answered() -> bool:  # the sandbox logs the gateway's answer once it has it
        deliveries = xseries.get("/_sandbox/webhooks/deliveries")["deliveries"]
        return any(d["type"] == "sale.update" and d["status"] == 200 for d in deliveries)

    await until(answered, what="the gateway answering the sale.update delivery")


PAY_FIVE = """mutation { payWithLoyalty(input: {idempotencyKey: "hook-1", saleId: "SALE",
  amount: "5"}) { __typename } }"""
