"""What the write scenarios spend, prepared before the clock starts.

A redemption needs a fresh signed offer (one redeems once: a second call only replays it) on
an open order; a loyalty payment needs an open sale. Orders and sales are made at the
sandboxes directly (the till's part, not the gateway's); offers come from the gateway's own
reward lookup, as Kounta's POS gets them. Item ``i`` belongs to bench member ``i``
(bench/scenarios.py ``MEMBERS``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from bench.scenarios import (
    ADDON,
    GST,
    KOUNTA_COMPANY,
    KOUNTA_SITE,
    REGISTER,
    TSHIRT,
    USER,
    Pool,
    customer_id,
    member,
    sale_id,
)
from bench.stack import Stack

PARALLEL = 16
REWARD = "pay-with-points"


Make = Callable[[httpx.AsyncClient, int], Awaitable[str]]


async def _many(count: int, make: Make) -> list[str]:
    """Item ``i`` is for bench member ``i``: consecutive requests, those in flight together,
    are for different customers."""
    gate = asyncio.Semaphore(PARALLEL)
    limits = httpx.Limits(max_connections=PARALLEL)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(index: int) -> str:
            async with gate:
                return await make(client, index)

        return list(await asyncio.gather(*(one(index) for index in range(count))))


async def _offer(stack: Stack, client: httpx.AsyncClient, index: int) -> str:
    """An order of 4.60 for a member, and the redeem path of 1 point on it."""
    xseries_id, kounta_id = member(index)
    order = {"status": "ON_HOLD", "customer_id": int(kounta_id), "site_id": int(KOUNTA_SITE),
             "lines": [{"product_id": 7302, "quantity": 1, "unit_price": 4.00,
                        "unit_tax": 0.60}]}  # fmt: skip
    made = await client.post(
        f"{stack.kounta.url}/v1/companies/{KOUNTA_COMPANY}/orders",
        json=order, headers=stack.kounta.headers(),
    )  # fmt: skip
    made.raise_for_status()
    order_id = str(made.json()["id"])
    query = {"customer_id": kounta_id, "reference_id": xseries_id, "company_id": KOUNTA_COMPANY,
             "site_id": KOUNTA_SITE, "order_id": order_id}  # fmt: skip
    lookup = await client.get(f"{stack.gateway}/kounta/{ADDON}/reward-lookup", params=query)
    lookup.raise_for_status()
    reward = next(r for r in lookup.json()["rewards"] if r["id"] == REWARD)
    url = urlsplit(reward["redeem_url"])
    return f"{url.path}?{url.query}&quantity=1"


async def _open_sale(stack: Stack, merchant_id: str, client: httpx.AsyncClient, index: int) -> str:
    """A saved sale of 23.00 for a member, nothing paid yet."""
    sale = {"register_id": REGISTER, "user_id": USER, "customer_id": member(index)[0],
            "status": "SAVED",
            "register_sale_products": [{"product_id": TSHIRT, "quantity": 1, "price": 20,
                                        "tax": 3, "tax_id": GST}]}  # fmt: skip
    made = await client.post(
        f"{stack.xseries.url}/api/register_sales", json=sale, headers=stack.xseries.headers()
    )
    made.raise_for_status()
    return sale_id(merchant_id, str(made.json()["register_sale"]["id"]))


def prepare(stack: Stack, merchant_id: str, pool: Pool, count: int) -> list[str]:
    if pool == "members":  # ids only: nothing to make
        return [customer_id(merchant_id, member(index)[0]) for index in range(count)]
    if pool == "kounta-offers":
        return asyncio.run(_many(count, lambda client, i: _offer(stack, client, i)))
    return asyncio.run(_many(count, lambda client, i: _open_sale(stack, merchant_id, client, i)))
