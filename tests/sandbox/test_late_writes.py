"""Late writes over real HTTP: a client that gave up waiting does not undo its write.

A real POS finishes a request whose client went away, so a write whose answer was lost may
still land, after the client's read-back and even after its retry. These tests run each
sandbox as a real uvicorn server with real sleeps, time a write out with a short read
timeout, and watch the write land afterwards, exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.sandbox import kounta, xseries
from tests.sandbox.conftest import TOKEN
from tests.sandbox.test_kounta_sandbox import BASE, CASH, JOHN_ORDER
from tests.sandbox.test_xseries_sandbox import JOHNNY_SALE, payment, resend, sale
from tests.support import ServerThread

HOLD_MS = 800
IMPATIENT = httpx.Timeout(5.0, read=0.2)  # gives up long before HOLD_MS
DEADLINE_S = 5.0
PAYMENTS = f"{BASE}/orders/{JOHN_ORDER}/payments"
KOUNTA_HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "Accept": "application/json",
    "Content-Type": "application/json",
}
XSERIES_HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def serve(app: Starlette) -> Iterator[str]:
    server = ServerThread(app).start()
    yield server.url
    server.stop()  # waits for held requests, so none outlives its test


@pytest.fixture
def kounta_url() -> Iterator[str]:
    yield from serve(kounta.create_app(token=TOKEN))


@pytest.fixture
def xseries_url() -> Iterator[str]:
    yield from serve(xseries.create_app(token=TOKEN))


@pytest.fixture
async def kounta_api(kounta_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=kounta_url, headers=KOUNTA_HEADERS) as client:
        yield client


@pytest.fixture
async def xseries_api(xseries_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=xseries_url, headers=XSERIES_HEADERS) as client:
        yield client


async def arm(client: httpx.AsyncClient, **faults: Any) -> None:
    response = await client.post("/_sandbox/faults", json=faults)
    assert response.status_code == 200, response.text


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    result: dict[str, Any] = (await client.get("/_sandbox/stats")).json()
    return result


async def times_out(base_url: str, headers: dict[str, str], path: str, body: Any) -> None:
    """Send a write from a client too impatient to wait for its answer."""
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=IMPATIENT) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(path, json=body)


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll until the condition holds; the deadline only bounds a failing test."""
    deadline = time.monotonic() + DEADLINE_S
    while not await condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


async def answered(client: httpx.AsyncClient, response_key: str) -> bool:
    """Whether the sandbox has finished the request (and answered nobody)."""
    return response_key in (await stats(client))["responses"]


# -- Kounta --------------------------------------------------------------------------------------


async def kounta_refs(client: httpx.AsyncClient) -> list[str]:
    response = await client.get(f"{BASE}/orders/{JOHN_ORDER}")
    assert response.status_code == 200, response.text
    return [p["ref"] for p in response.json()["payments"]]


async def test_kounta_a_payment_whose_answer_timed_out_lands_late(
    kounta_url: str, kounta_api: httpx.AsyncClient
) -> None:
    await arm(kounta_api, late_ms=HOLD_MS, path=PAYMENTS)
    body = {"method_id": CASH, "amount": 5, "ref": "late-1"}
    await times_out(kounta_url, KOUNTA_HEADERS, PAYMENTS, body)
    assert await kounta_refs(kounta_api) == []
    route = "POST /v1/companies/{company_id}/orders/{order_id}/payments"
    assert (await stats(kounta_api))["requests"][route] == 1  # counted when it arrived

    async def landed() -> bool:
        return await kounta_refs(kounta_api) == ["late-1"]

    await eventually(landed)
    await eventually(lambda: answered(kounta_api, f"{route} 201"))
    assert await kounta_refs(kounta_api) == ["late-1"]


async def test_kounta_the_retry_lands_first_and_the_original_after_it(
    kounta_url: str, kounta_api: httpx.AsyncClient
) -> None:
    """The case a gateway must survive: its timed-out payment lands after its retry."""
    await arm(kounta_api, late_ms=HOLD_MS, late_next=1, path=PAYMENTS)
    body = {"method_id": CASH, "amount": 5, "ref": "redeem-1"}
    await times_out(kounta_url, KOUNTA_HEADERS, PAYMENTS, body)
    retry = await kounta_api.post(PAYMENTS, json=body)
    assert retry.status_code == 201
    assert await kounta_refs(kounta_api) == ["redeem-1"]

    async def both_landed() -> bool:
        return await kounta_refs(kounta_api) == ["redeem-1", "redeem-1"]

    await eventually(both_landed)


# -- X-Series ------------------------------------------------------------------------------------


async def johnny_payments(client: httpx.AsyncClient) -> list[Any]:
    response = await client.get(f"/api/register_sales/{JOHNNY_SALE}")
    assert response.status_code == 200, response.text
    return [p["amount"] for p in response.json()["register_sales"][0]["register_sale_payments"]]


async def sales_noted(client: httpx.AsyncClient, note: str) -> int:
    response = await client.get("/api/register_sales")
    assert response.status_code == 200, response.text
    return sum(1 for s in response.json()["register_sales"] if s.get("note") == note)


async def test_xseries_a_payment_appended_to_an_open_sale_lands_late(
    xseries_url: str, xseries_api: httpx.AsyncClient
) -> None:
    await arm(xseries_api, late_ms=HOLD_MS, path="/api/register_sales")
    johnny = (await xseries_api.get(f"/api/register_sales/{JOHNNY_SALE}")).json()
    stored = johnny["register_sales"][0]
    paid = [*stored["register_sale_payments"], payment(amount=7)]
    body = resend(stored, register_sale_payments=paid)
    await times_out(xseries_url, XSERIES_HEADERS, "/api/register_sales", body)
    assert await johnny_payments(xseries_api) == [5]

    async def landed() -> bool:
        return await johnny_payments(xseries_api) == [5, 7]

    await eventually(landed)
    await eventually(lambda: answered(xseries_api, "POST /api/register_sales 200"))
    assert await johnny_payments(xseries_api) == [5, 7]


async def test_xseries_a_new_sale_lands_late(
    xseries_url: str, xseries_api: httpx.AsyncClient
) -> None:
    await arm(xseries_api, late_ms=HOLD_MS, path="/api/register_sales")
    await times_out(xseries_url, XSERIES_HEADERS, "/api/register_sales", sale(note="late-sale"))
    assert await sales_noted(xseries_api, "late-sale") == 0

    async def landed() -> bool:
        return await sales_noted(xseries_api, "late-sale") == 1

    await eventually(landed)
    await eventually(lambda: answered(xseries_api, "POST /api/register_sales 200"))
    assert await sales_noted(xseries_api, "late-sale") == 1


async def test_a_slow_write_whose_client_gave_up_still_lands(
    xseries_url: str, xseries_api: httpx.AsyncClient
) -> None:
    """Plain latency, no late fault: the disconnect alone must not drop the write."""
    await arm(xseries_api, latency_ms=HOLD_MS, method="POST", path="/api/register_sales")
    await times_out(xseries_url, XSERIES_HEADERS, "/api/register_sales", sale(note="slow"))
    assert await sales_noted(xseries_api, "slow") == 0

    async def landed() -> bool:
        return await sales_noted(xseries_api, "slow") == 1

    await eventually(landed)
    await eventually(lambda: answered(xseries_api, "POST /api/register_sales 200"))
    assert await sales_noted(xseries_api, "slow") == 1
