"""Finding customers on every POS of a merchant, and their sales."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import TypeVar

from pydantic import TypeAdapter

from gateway.domain import ids
from gateway.domain.customers import Customer
from gateway.domain.errors import NotFound, ValidationError
from gateway.domain.ids import Kind
from gateway.domain.merchant import PointsSource, Pos
from gateway.domain.money import ZERO
from gateway.domain.sales import Sale
from gateway.domain.text import MAX_KEYWORD_LENGTH, check_text
from gateway.pos.errors import UpstreamNotFound
from gateway.pos.kounta.models import Customer as KountaCustomer
from gateway.pos.kounta.translate import to_customer as kounta_customer
from gateway.pos.xseries.models import Customer as XSeriesCustomer
from gateway.pos.xseries.translate import to_customer, to_sale
from gateway.services import catalog, customer_cache
from gateway.services.context import Scope
from gateway.services.points import points_book

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_RESULTS = 100
DIRECTORY_TTL_S = 60
DIRECTORY = TypeAdapter(list[KountaCustomer])
T = TypeVar("T")


def clean_keyword(keyword: str, field: str = "search") -> str:
    """Whitespace runs become one space; then at least one character, printable, bounded."""
    keyword = " ".join(keyword.split())
    if not keyword:
        raise ValidationError(f"{field} needs at least one character", field=field)
    return check_text(keyword, field, max_length=MAX_KEYWORD_LENGTH)


def _limit(first: int) -> int:
    return max(1, min(first, MAX_RESULTS))


async def search_xseries(scope: Scope, keyword: str, first: int) -> list[Customer]:
    """Keyword → X-Series: an email is looked up exactly (0.9 ``/customers?email=``: the 2.0
    search has no email field); anything else is a 2.0 search by name.

    One word is tried as a first name, a last name and a customer code at once; two or
    more as "first last". Results keep X-Series' order, each customer once.
    """
    client = await scope.xseries()
    limit = _limit(first)
    if EMAIL.match(keyword):
        batches = [(await client.list_customers(email=keyword, page_size=limit)).items]
    else:
        words = keyword.split(" ")
        if len(words) == 1:
            searches = [
                client.search_customers(first_name=keyword, page_size=limit),
                client.search_customers(last_name=keyword, page_size=limit),
                client.search_customers(customer_code=keyword, page_size=limit),
            ]
        else:
            rest = " ".join(words[1:])
            searches = [
                client.search_customers(first_name=words[0], last_name=rest, page_size=limit)
            ]
        batches = await asyncio.gather(*searches)
    seen: dict[str, Customer] = {}
    for batch in batches:
        for found in batch:
            seen.setdefault(found.id, to_customer(found))
    return list(seen.values())[:limit]


async def search_kounta(scope: Scope, keyword: str, first: int) -> list[KountaCustomer]:
    """Kounta has no keyword search: an email is looked up directly; names are matched
    against the company's customer directory, cached for a minute."""
    client = scope.kounta()
    if EMAIL.match(keyword):
        found = await client.customer_by_email(keyword)
        return [found] if found else []

    async def load() -> list[KountaCustomer]:
        return [customer async for customer in client.iter_customers()]

    directory = await scope.runtime.cache.get_or_load(
        "kounta-customers", scope.merchant.id, load, ttl=DIRECTORY_TTL_S, adapter=DIRECTORY
    )
    words = [word.lower() for word in keyword.split(" ")]
    return [c for c in directory if _names_match(c, words)][: _limit(first)]


def _names_match(customer: KountaCustomer, words: list[str]) -> bool:
    names = [n.lower() for n in (customer.first_name, customer.last_name or "") if n]
    return all(any(name.startswith(word) for name in names) for word in words)


async def kounta_view(scope: Scope, customer: KountaCustomer, *, fresh: bool = False) -> Customer:
    """A Kounta customer with the balance they hold: a LEDGER merchant's ledger balance
    (never stale: the ledger is the balance); for an XSERIES merchant, the linked X-Series
    customer's (not a member until linked)."""
    if scope.merchant.points_source is PointsSource.LEDGER:
        balance = await points_book(scope).balance(customer.id)
        return kounta_customer(customer, balance=balance, member=True)
    reference = customer.reference_id
    linked = await _xseries_or_none(scope, reference, fresh=fresh) if reference else None
    if linked is None:
        return kounta_customer(customer, balance=ZERO, member=False)
    return kounta_customer(customer, balance=linked.balance, member=linked.loyalty_enabled)


async def search_customers(
    scope: Scope, keyword: str, first: int = 20, *, fresh: bool = False
) -> list[Customer]:
    """Every POS of the merchant at once (so it takes as long as the slower one); a Kounta
    customer linked to an X-Series customer (``reference_id``) is that person, once.
    X-Series' own results are read now; ``fresh``: the linked ones too (else they may come
    from the cache)."""
    keyword = clean_keyword(keyword)
    merchant = scope.merchant
    xseries_search = search_xseries(scope, keyword, first) if merchant.has(Pos.XSERIES) else None
    kounta_search = search_kounta(scope, keyword, first) if merchant.has(Pos.KOUNTA) else None
    found, kounta = await asyncio.gather(_or_empty(xseries_search), _or_empty(kounta_search))
    known = {c.pos_id for c in found}
    linked: list[str] = []
    unlinked: list[KountaCustomer] = []
    for customer in kounta:
        reference = customer.reference_id
        if merchant.points_source is PointsSource.XSERIES and reference:
            if reference not in known and reference not in linked:
                linked.append(reference)
        else:
            unlinked.append(customer)
    extra = await asyncio.gather(
        *(_xseries_or_none(scope, reference, fresh=fresh) for reference in linked),
        *(kounta_view(scope, customer, fresh=fresh) for customer in unlinked),
    )
    found.extend(customer for customer in extra if customer is not None)
    return found[: _limit(first)]


async def _or_empty(search: Awaitable[list[T]] | None) -> list[T]:
    return [] if search is None else await search


async def _xseries_or_none(scope: Scope, pos_id: str, *, fresh: bool = False) -> Customer | None:
    try:
        return await get_xseries_customer(scope, pos_id, fresh=fresh)
    except NotFound:
        return None


async def get_customer(scope: Scope, customer_id: str, *, fresh: bool = False) -> Customer:
    """By global id; NOT_FOUND for an unknown id or another merchant's. ``fresh``: the
    balance read now, for a decision (else it may come from the cache)."""
    gid = ids.decode(customer_id, Kind.CUSTOMER, scope.merchant.id)
    if gid.pos is Pos.KOUNTA:
        kounta = await get_kounta_customer(scope, gid.local_id)
        return await kounta_view(scope, kounta, fresh=fresh)
    return await get_xseries_customer(scope, gid.local_id, fresh=fresh)


async def get_xseries_customer(scope: Scope, pos_id: str, *, fresh: bool = False) -> Customer:
    """``fresh``: read X-Series now, for a decision (what may be spent or offered); else
    the cached customer may do (services/customer_cache.py)."""
    client = await scope.xseries()

    async def load() -> XSeriesCustomer:
        # Never shares a read in flight: one begun before a write would answer from before.
        return await client.get_customer(pos_id, fresh=True)

    try:
        found = await customer_cache.xseries_customer(scope, pos_id, load, fresh=fresh)
    except UpstreamNotFound:
        raise ids.not_found(Kind.CUSTOMER, pos_id) from None
    return to_customer(found)


async def get_kounta_customer(scope: Scope, pos_id: str) -> KountaCustomer:
    try:
        return await scope.kounta().get_customer(pos_id)
    except UpstreamNotFound:
        raise ids.not_found(Kind.CUSTOMER, pos_id) from None


async def customer_sales(scope: Scope, customer: Customer, first: int = 10) -> list[Sale]:
    """An X-Series customer's sales, newest first (Kounta has no per-customer order list
    in the API the gateway uses, so a Kounta-only customer shows none)."""
    if customer.pos is not Pos.XSERIES:
        return []
    client = await scope.xseries()
    found, types = await asyncio.gather(
        client.search_sales(customer_id=customer.pos_id, limit=_limit(first)),
        catalog.payment_types(scope),
    )
    return [to_sale(sale, types) for sale in found]
