"""Earning at Kounta: the sandbox completes an order and delivers ``orders/completed`` to a
real gateway server, which credits the member once however the webhook arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest

from gateway.domain.ids import Kind
from gateway.runtime import Runtime
from gateway.services.subscriptions import KOUNTA_TOPICS
from gateway.settings import Settings
from tests.api.test_kounta_adapters import JOHN_ORDER, john, xseries_balance
from tests.demo_ids import JOHN_SMITH
from tests.gateways import KOUNTA_COMPANY, Gateway, KountaPos, make_kounta_gateway, reward_url
from tests.services.test_loyalty_permission import (
    NO_LOYALTY_WRITE,
    adjustments,
    worker_pass_long_after,
)
from tests.support import SandboxHandle, ServerThread

WEBHOOKS = f"/v1/companies/{KOUNTA_COMPANY}/webhooks"


@pytest.fixture
def settings(settings: Settings, public_port: int) -> Settings:
    """The gateway is reachable by the POS at this URL (webhooks are registered there)."""
    return settings.model_copy(update={"public_url": f"http://127.0.0.1:{public_port}"})


@pytest.fixture
async def café(
    runtime: Runtime, live: ServerThread, xseries: SandboxHandle, kounta: SandboxHandle
) -> AsyncIterator[Gateway]:
    gw = await make_kounta_gateway(runtime, kounta, "Stark Industries", xseries=xseries)
    yield gw
    await gw.client.aclose()


def complete(
    kounta: SandboxHandle, order_id: str, deliveries: int = 1, concurrent: bool = False
) -> list[dict[str, Any]]:
    response = kounta.post(
        f"/_sandbox/orders/{order_id}/complete",
        {"deliveries": deliveries, "concurrent": concurrent},
    )
    assert response.status_code == 200, response.text
    delivered: list[dict[str, Any]] = response.json()["deliveries"]
    return delivered


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def test_adding_the_merchant_registered_the_webhook(
    café: Gateway, kounta: SandboxHandle, live: ServerThread
) -> None:
    hooks = kounta.get(WEBHOOKS)
    assert sorted(hook["topic"] for hook in hooks) == sorted(KOUNTA_TOPICS)
    assert {hook["address"] for hook in hooks} == {f"{live.url}/webhooks/kounta"}
    secrets = {hook["headers"]["Authorization"] for hook in hooks}
    assert len(secrets) == 1 and secrets.pop().startswith("Bearer ")


async def test_a_completed_order_credits_its_member_once(
    café: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    deliveries = complete(kounta, JOHN_ORDER, deliveries=3, concurrent=True)
    # orders/completed and orders/updated, three times each: six hints, one credit
    assert [d["status"] for d in deliveries] == [200] * 6
    earned = Decimal("0.1") * (6 * Decimal(4) + Decimal(9))  # tax-exclusive account
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal(120) + earned
    complete(kounta, JOHN_ORDER, deliveries=2)  # Kounta retries later
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal(120) + earned
    assert xseries.count("POST /api/2026-07/loyalty/adjustments/bulk") == 1
    balance = await café.data(
        "query($id: ID!) { customer(id: $id) { loyaltyBalance } }",
        {"id": café.id(Kind.CUSTOMER, JOHN_SMITH)},
    )
    assert balance["customer"]["loyaltyBalance"] == "123.30"


async def test_no_points_on_the_part_paid_with_points(
    café: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    pos = KountaPos(café)
    assert await pos.redeem(reward_url(await john(pos), "free-coffee"), JOHN_ORDER) == {
        "success": True
    }
    complete(kounta, JOHN_ORDER)
    factor = (Decimal("37.95") - Decimal("4.60")) / Decimal("37.95")
    earned = 6 * cents(Decimal("0.4") * factor) + cents(Decimal("0.9") * factor)
    assert earned == Decimal("2.89")
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal(120) - 40 + earned


async def test_an_order_without_a_linked_member_earns_nothing(
    café: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    deliveries = complete(kounta, "93824703")  # Lucy: not linked to X-Series
    assert deliveries[0]["status"] == 200
    assert xseries.count("POST /api/2026-07/loyalty/adjustments/bulk") == 0


async def test_a_forged_webhook_is_refused_and_credits_nothing(
    café: Gateway, live: ServerThread, xseries: SandboxHandle
) -> None:
    async with httpx.AsyncClient() as http:
        forged = await http.post(
            f"{live.url}/webhooks/kounta",
            json={"id": int(JOHN_ORDER), "company_id": int(KOUNTA_COMPANY)},
            headers={"Authorization": "Bearer guessed"},
        )
        unsigned = await http.post(f"{live.url}/webhooks/kounta", content=b"not json")
    assert forged.status_code == 401
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal(120)
    assert unsigned.status_code == 400


async def test_the_payload_is_not_trusted_for_money(
    café: Gateway, live: ServerThread, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    """A genuine header on an order that is not complete earns nothing (yet)."""
    secret = kounta.get(WEBHOOKS)[0]["headers"]["Authorization"]
    async with httpx.AsyncClient() as http:
        early = await http.post(
            f"{live.url}/webhooks/kounta",
            json={
                "id": int(JOHN_ORDER),
                "company_id": int(KOUNTA_COMPANY),
                "total": 99999,
                "status": "COMPLETE",
            },
            headers={"Authorization": secret},
        )
    assert early.status_code == 503  # not complete at Kounta: asks to be retried
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal(120)


async def test_registration_at_start_up_is_idempotent_and_repairs(
    café: Gateway, runtime: Runtime, kounta: SandboxHandle
) -> None:
    from gateway.services.context import Services
    from gateway.services.subscriptions import ensure_kounta

    services = Services(runtime)
    assert await ensure_kounta(services, café.merchant) == "unchanged"
    hook = kounta.get(WEBHOOKS)[0]
    kounta._http.put(
        f"{WEBHOOKS}/{hook['id']}",
        json={"headers": {"Authorization": "stale"}},
        headers={"Authorization": f"Bearer {kounta.token}"},
    ).raise_for_status()
    assert await ensure_kounta(services, café.merchant) == "updated"
    hooks = kounta.get(WEBHOOKS)
    assert len(hooks) == len(KOUNTA_TOPICS)
    assert all(found["headers"] == hook["headers"] for found in hooks)
    kounta._http.delete(
        f"{WEBHOOKS}/{hooks[-1]['id']}", headers={"Authorization": f"Bearer {kounta.token}"}
    ).raise_for_status()
    assert await ensure_kounta(services, café.merchant) == "created"
    assert sorted(h["topic"] for h in kounta.get(WEBHOOKS)) == sorted(KOUNTA_TOPICS)


async def test_an_earning_the_token_may_not_credit_is_final_and_never_retried(
    café: Gateway, runtime: Runtime, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    """No loyalty.transaction.write: refused for good, so the webhook is answered (Kounta
    stops sending it) and the worker does not ask X-Series again, pass after pass."""
    xseries.scopes(NO_LOYALTY_WRITE)
    assert [d["status"] for d in complete(kounta, JOHN_ORDER)] == [200, 200]
    assert adjustments(xseries) == {"403": 1}  # the credit, refused
    await worker_pass_long_after(runtime)
    assert [d["status"] for d in complete(kounta, JOHN_ORDER)] == [200, 200]  # redelivered
    assert adjustments(xseries) == {"403": 1}
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal(120)
