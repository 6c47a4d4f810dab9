"""Reading sales: an X-Series sale or a Kounta order, by global id, in the gateway's terms."""

from __future__ import annotations

from gateway.domain import ids
from gateway.domain.errors import ValidationError
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.domain.sales import Sale
from gateway.pos.errors import UpstreamNotFound
from gateway.pos.kounta.translate import to_sale as kounta_sale
from gateway.pos.xseries.translate import to_sale
from gateway.services import catalog
from gateway.services.context import Scope
from gateway.services.earning import order_earning


def xseries_sale_id(scope: Scope, sale_id: str) -> str:
    gid = ids.decode(sale_id, Kind.SALE, scope.merchant.id)
    if gid.pos is not Pos.XSERIES:
        raise ValidationError("this operation takes an X-Series sale", field="saleId")
    return gid.local_id


async def get_sale(scope: Scope, sale_id: str) -> Sale:
    """An X-Series sale or a Kounta order, by global id."""
    gid = ids.decode(sale_id, Kind.SALE, scope.merchant.id)
    if gid.pos is Pos.KOUNTA:
        return await get_kounta_order(scope, gid.local_id)
    return await get_xseries_sale(scope, gid.local_id)


async def get_kounta_order(scope: Scope, order_id: str) -> Sale:
    try:
        order = await scope.kounta().get_order(order_id)
    except UpstreamNotFound:
        raise ids.not_found(Kind.SALE, order_id) from None
    earns = await order_earning(scope, order, member_enabled=order.customer_ref is not None)
    method_id = scope.merchant.account(Pos.KOUNTA).settings.get("payment_method_id")
    return kounta_sale(order, method_id, earns.loyalty_earned)


async def get_xseries_sale(scope: Scope, pos_id: str, *, fresh: bool = False) -> Sale:
    client = await scope.xseries()
    try:
        sale = await client.get_sale(pos_id, fresh=fresh)
    except UpstreamNotFound:
        raise ids.not_found(Kind.SALE, pos_id) from None
    return to_sale(sale, await catalog.payment_types(scope))
