"""Answers of X-Series' loyalty adjustments that the sandbox never gives, met by a whole
redemption: the gateway goes by which list the customer is in, and when the answer does not
say, it decides nothing and asks again (the same ``session_id``) instead of guessing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from gateway import jsonx
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.store.models import RedemptionRow
from tests.api.test_kounta_adapters import JOHN_ORDER, john, kounta_order, xseries_balance
from tests.conftest import fresh_runtime
from tests.demo_ids import JOHN_SMITH
from tests.gateways import Gateway, KountaPos, make_kounta_gateway, reward_url
from tests.support import SandboxHandle

ADJUST = "/api/2026-07/loyalty/adjustments/bulk"


class AdjustmentsAnswer(httpx.AsyncBaseTransport):
    """The network to the sandboxes, except that while ``body`` is set the loyalty
    adjustments are answered 200 with it, and never reach the sandbox."""

    def __init__(self) -> None:
        self.network = httpx.AsyncHTTPTransport()
        self.body: object = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.body is not None and request.url.path == ADJUST:
            return httpx.Response(200, content=jsonx.dumps(self.body))
        return await self.network.handle_async_request(request)

    async def aclose(self) -> None:
        await self.network.aclose()


@pytest.fixture
async def answer() -> AsyncIterator[AdjustmentsAnswer]:
    transport = AdjustmentsAnswer()
    yield transport
    await transport.aclose()


@pytest.fixture
async def café(
    settings: Settings,
    answer: AdjustmentsAnswer,
    xseries: SandboxHandle,
    kounta: SandboxHandle,
) -> AsyncIterator[tuple[Gateway, Runtime]]:
    runtime = await fresh_runtime(settings, transport=answer)
    gw = await make_kounta_gateway(runtime, kounta, "Answers Café", xseries=xseries)
    yield gw, runtime
    await gw.client.aclose()
    await runtime.aclose()


@pytest.mark.parametrize(
    "body",
    [
        {"applied": [], "errors": []},
        {"applied": [{"customer_id": "someone-else", "balance": 1}], "errors": []},
    ],
)
async def test_an_answer_silent_about_our_customer_takes_nothing_and_is_asked_again(
    café: tuple[Gateway, Runtime],
    answer: AdjustmentsAnswer,
    xseries: SandboxHandle,
    kounta: SandboxHandle,
    body: object,
) -> None:
    gw, runtime = café
    pos = KountaPos(gw)
    url = reward_url(await john(pos), "free-coffee")
    answer.body = body
    refused = await pos.redeem(url, JOHN_ORDER)
    assert refused["success"] is False
    assert "without saying whether customer" in refused["error"]
    assert kounta_order(kounta, JOHN_ORDER)["payments"] == []  # not paid on a guess
    async with runtime.db.read() as session:
        assert [r.status for r in await session.scalars(select(RedemptionRow))] == ["PENDING"]

    answer.body = None  # X-Series answers as its specification says again
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    assert xseries.count(f"POST {ADJUST}") == 1  # the silent answer never reached it
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1
