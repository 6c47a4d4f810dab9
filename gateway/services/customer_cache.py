"""X-Series customers (and so their balances) as the gateway shows them, cached in the
shared cache, and what forgets them (docs/architecture.md, "Caching and freshness").

A display read may be served from here for up to ``GATEWAY_CACHE_TTL_CUSTOMER_S``; every
gateway write that moves a balance, and every POS webhook or reconciliation that says one
moved, forgets the customer in every process before it answers, so the next read after it
is never older than it. A read that decides what may be spent or offered passes
``fresh=True``: it reads X-Series now (and leaves what it read for the next display).

Keyed by the X-Series store, like the balance lease (``points.balance_lock``): merchants
sharing a store share its customers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import TypeAdapter

from gateway.domain.merchant import Pos
from gateway.pos.xseries.models import Customer
from gateway.services.context import Scope

CUSTOMER = TypeAdapter(Customer)


def _namespace(scope: Scope) -> str | None:
    account = scope.merchant.accounts.get(Pos.XSERIES)
    return f"xseries-customer:{account.base_url}" if account else None


def _now(scope: Scope) -> Callable[[], float]:
    return lambda: scope.runtime.clock().timestamp()


async def xseries_customer(
    scope: Scope, customer_id: str, load: Callable[[], Awaitable[Customer]], *, fresh: bool
) -> Customer:
    namespace = _namespace(scope)
    if namespace is None:  # not reached: the caller has an X-Series client
        return await load()
    return await scope.runtime.cache.get_or_load_stamped(
        namespace,
        customer_id,
        load,
        ttl_s=scope.runtime.settings.cache_ttl_customer_s,
        adapter=CUSTOMER,
        now=_now(scope),
        fresh=fresh,
    )


async def forget(scope: Scope, customer_id: str | None) -> None:
    """The customer's balance moved, or may have: the next read asks X-Series."""
    namespace = _namespace(scope)
    if customer_id and namespace is not None:
        await scope.runtime.cache.restamp(namespace, customer_id)
