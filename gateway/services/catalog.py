"""X-Series reference data, cached per merchant: account config, payment types, registers,
products.

Cached because every quote and sale needs them and they change rarely; webhooks and TTLs
keep them fresh. Balances are never cached here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from pydantic import TypeAdapter

from gateway.domain.errors import LoyaltyDisabled, NotFound, ValidationError
from gateway.pos.errors import UpstreamNotFound
from gateway.pos.xseries.models import PaymentType, Product, Register, RetailerConfig
from gateway.services.context import Scope

CONFIG = TypeAdapter(RetailerConfig)
PAYMENT_TYPES = TypeAdapter(list[PaymentType])
REGISTERS = TypeAdapter(list[Register])
PRODUCT = TypeAdapter(Product)


async def account_config(scope: Scope) -> RetailerConfig:
    client = await scope.xseries()
    return await scope.runtime.cache.get_or_load(
        "xseries-config",
        scope.merchant.id,
        client.get_config,
        ttl=scope.runtime.settings.cache_ttl_config_s,
        adapter=CONFIG,
    )


async def payment_types(scope: Scope) -> list[PaymentType]:
    client = await scope.xseries()
    return await scope.runtime.cache.get_or_load(
        "xseries-payment-types",
        scope.merchant.id,
        client.list_payment_types,
        ttl=scope.runtime.settings.cache_ttl_catalog_s,
        adapter=PAYMENT_TYPES,
    )


async def loyalty_payment_type(scope: Scope) -> PaymentType:
    """Loyalty rules, redeeming: the type whose payment_type_id is 106; its own id is used."""
    for payment_type in await payment_types(scope):
        if payment_type.is_loyalty:
            return payment_type
    raise LoyaltyDisabled("this store has no Loyalty payment type, so loyalty cannot be spent")


async def register(scope: Scope, register_id: str) -> Register:
    """The register by id (its ``outlet_id`` decides outlet price books); an unknown one is
    VALIDATION naming ``registerId``. A miss in a cached list reads X-Series again once,
    so a register added since it was cached is found."""
    client = await scope.xseries()
    read_now = False

    async def load() -> list[Register]:
        nonlocal read_now
        read_now = True
        return await client.list_registers()

    for _ in range(2):
        found = await scope.runtime.cache.get_or_load(
            "xseries-registers",
            scope.merchant.id,
            load,
            ttl=scope.runtime.settings.cache_ttl_catalog_s,
            adapter=REGISTERS,
        )
        for known in found:
            if known.id == register_id:
                return known
        if read_now:
            break
        await scope.runtime.cache.delete("xseries-registers", scope.merchant.id)
    raise ValidationError(
        f"registerId {register_id!r} is not a register of this store", field="registerId"
    )


async def products(scope: Scope, product_ids: Iterable[str]) -> dict[str, Product]:
    """The products by id; an unknown one is NOT_FOUND naming it."""
    client = await scope.xseries()
    wanted = list(dict.fromkeys(product_ids))

    async def one(product_id: str) -> Product:
        try:
            return await scope.runtime.cache.get_or_load(
                f"xseries-product:{scope.merchant.id}",
                product_id,
                lambda: client.get_product(product_id),
                ttl=scope.runtime.settings.cache_ttl_catalog_s,
                adapter=PRODUCT,
            )
        except UpstreamNotFound:
            raise NotFound(f"no product with id {product_id!r}", field="productId") from None

    found = await asyncio.gather(*(one(product_id) for product_id in wanted))
    return {product.id: product for product in found}


async def forget_product(scope: Scope, product_id: str) -> None:
    await scope.runtime.cache.delete(f"xseries-product:{scope.merchant.id}", product_id)


async def forget_account(scope: Scope) -> None:
    await scope.runtime.cache.delete("xseries-config", scope.merchant.id)
    await scope.runtime.cache.delete("xseries-payment-types", scope.merchant.id)
    await scope.runtime.cache.delete("xseries-registers", scope.merchant.id)
