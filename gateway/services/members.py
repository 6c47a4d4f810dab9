"""Members: whoever holds a balance of record, however a POS names them.

Under ``XSERIES`` a member is an X-Series customer (member id = X-Series customer id) and
a Kounta customer is that member once linked by ``reference_id``. Under ``LEDGER`` a
member is a Kounta customer (member id = Kounta customer id).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.customers import Customer
from gateway.domain.errors import CustomerLoyaltyDisabled, ValidationError
from gateway.domain.merchant import PointsSource, Pos
from gateway.services import customers
from gateway.services.context import Scope


@dataclass(frozen=True)
class Member:
    id: str
    customer: Customer


def check_enabled(member: Member) -> None:
    """A member whose loyalty is off spends nothing."""
    if not member.customer.loyalty_enabled:
        raise CustomerLoyaltyDisabled("loyalty is turned off for this customer")


def _xseries(scope: Scope) -> bool:
    return scope.merchant.points_source is PointsSource.XSERIES


async def member(scope: Scope, member_id: str, *, fresh: bool = False) -> Member:
    if _xseries(scope):
        return Member(
            member_id, await customers.get_xseries_customer(scope, member_id, fresh=fresh)
        )
    kounta = await customers.get_kounta_customer(scope, member_id)
    return Member(member_id, await customers.kounta_view(scope, kounta))


async def member_of(scope: Scope, customer: Customer) -> Member:
    """The member behind a customer of either POS, with the balance as the customer was
    read (perhaps from the cache: docs/architecture.md, "Caching and freshness"); what
    decides a redemption reads it again (``member(..., fresh=True)``)."""
    if customer.pos is Pos.XSERIES:
        if not _xseries(scope):
            raise ValidationError(
                "this merchant's points are kept by the gateway for Kounta customers",
                field="customerId",
            )
        return Member(customer.pos_id, customer)
    if not _xseries(scope):
        return Member(customer.pos_id, customer)  # the ledger's balance: never stale
    kounta = await customers.get_kounta_customer(scope, customer.pos_id)
    if not kounta.reference_id:
        raise ValidationError(
            "this Kounta customer is not linked to an X-Series customer yet",
            field="customerId",
        )
    return await member(scope, kounta.reference_id)


async def member_from_kounta(scope: Scope, customer_id: str, reference_id: str) -> Member:
    """The member Kounta's reward lookup names: our ``reference_id`` when Kounta has it,
    else the link stored on its customer. Their balance is read now: it decides which
    rewards the till offers."""
    if not _xseries(scope):
        return await member(scope, customer_id or reference_id)
    if not reference_id:
        kounta = await customers.get_kounta_customer(scope, customer_id)
        reference_id = kounta.reference_id
    if not reference_id:
        raise ValidationError("this Kounta customer is not linked to a loyalty member")
    return await member(scope, reference_id, fresh=True)


async def search_members(scope: Scope, keyword: str, first: int) -> list[Member]:
    """Members matching a keyword, for Kounta's customer search."""
    keyword = customers.clean_keyword(keyword)
    if _xseries(scope):
        found = await customers.search_xseries(scope, keyword, first)
        return [Member(c.pos_id, c) for c in found]
    kounta = await customers.search_kounta(scope, keyword, first)
    return [Member(c.id, await customers.kounta_view(scope, c)) for c in kounta]
