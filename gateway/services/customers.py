"""Finding customers and their sales."""

from __future__ import annotations

import asyncio
import re

from gateway.domain import ids
from gateway.domain.customers import Customer
from gateway.domain.errors import ValidationError
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.domain.sales import Sale
from gateway.pos.http import UpstreamNotFound
from gateway.pos.xseries.translate import to_customer, to_sale
from gateway.services import catalog
from gateway.services.context import Scope

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_RESULTS = 100


def clean_keyword(keyword: str) -> str:
    keyword = " ".join(keyword.split())
    if not keyword:
        raise ValidationError("search needs at least one character", field="search")
    if len(keyword) > 200:
        raise ValidationError("search is limited to 200 characters", field="search")
    return keyword


async def search_xseries(scope: Scope, keyword: str, first: int) -> list[Customer]:
    """Keyword → X-Series search: the email when it looks like one, else names.

    One word is tried as a first name, a last name and a customer code at once; two or
    more as "first last". Results keep X-Series' order, each customer once.
    """
    client = await scope.xseries()
    limit = max(1, min(first, MAX_RESULTS))
    if EMAIL.match(keyword):
        searches = [{"email": keyword}]
    else:
        words = keyword.split(" ")
        if len(words) == 1:
            searches = [{"first_name": keyword}, {"last_name": keyword}, {"customer_code": keyword}]
        else:
            searches = [{"first_name": words[0], "last_name": " ".join(words[1:])}]
    batches = await asyncio.gather(
        *(client.search_customers(filters, page_size=limit) for filters in searches)
    )
    seen: dict[str, Customer] = {}
    for batch in batches:
        for found in batch:
            seen.setdefault(found.id, to_customer(found))
    return list(seen.values())[:limit]


async def search_customers(scope: Scope, keyword: str, first: int = 20) -> list[Customer]:
    keyword = clean_keyword(keyword)
    if not scope.merchant.has(Pos.XSERIES):
        return []
    return await search_xseries(scope, keyword, first)


async def get_customer(scope: Scope, customer_id: str) -> Customer:
    """By global id; NOT_FOUND for an unknown id or another merchant's."""
    gid = ids.decode(customer_id, Kind.CUSTOMER, scope.merchant.id)
    return await get_xseries_customer(scope, gid.local_id)


async def get_xseries_customer(scope: Scope, pos_id: str, *, fresh: bool = False) -> Customer:
    client = await scope.xseries()
    try:
        return to_customer(await client.get_customer(pos_id, fresh=fresh))
    except UpstreamNotFound:
        raise ids.not_found(Kind.CUSTOMER, pos_id) from None


async def customer_sales(scope: Scope, customer: Customer, first: int = 10) -> list[Sale]:
    if customer.pos is not Pos.XSERIES:
        return []
    client = await scope.xseries()
    found, types = await asyncio.gather(
        client.search_sales(customer_id=customer.pos_id, limit=max(1, min(first, MAX_RESULTS))),
        catalog.payment_types(scope),
    )
    return [to_sale(sale, types) for sale in found]
