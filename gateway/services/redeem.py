"""Redeeming a reward: one use case for Kounta's redeem URL and GraphQL's redeemReward.

It runs once per key (the signed offer's digest, or the caller's idempotency key) and goes
to the POS of the order or sale: ``redeem_kounta`` or ``redeem_xseries``, which share the
record and its steps (``redemption_records``).
"""

from __future__ import annotations

from decimal import Decimal

from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.domain.money import parse_amount
from gateway.services import customers, members, redeem_kounta, redeem_xseries
from gateway.services import redemption_records as records
from gateway.services.context import Scope
from gateway.services.idempotency import Attempt, LeftForRetry
from gateway.services.redemption_records import REDEMPTION, Redemption, RedemptionRequest
from gateway.store.idempotency import KeyRecord

OPERATION = "redeemReward"


async def redeem(scope: Scope, request: RedemptionRequest) -> Redemption:
    async def execute(attempt: Attempt) -> Redemption:
        return await _on_pos(scope, request, attempt)

    fingerprint = {k: v for k, v in request.as_json().items() if k not in {"key", "key_space"}}
    return await scope.services.idempotency.run_once(
        merchant_id=scope.merchant.id,
        key=request.key,
        operation=OPERATION,
        request=fingerprint,
        execute=execute,
        adapter=REDEMPTION,
        key_space=request.key_space,
    )


async def recover(scope: Scope, record: KeyRecord) -> Redemption | None:
    """The worker: finish, or undo, a redemption whose attempt ended without finishing
    (even one whose answer was recorded while its record was not: a fault of ours)."""

    async def execute(attempt: Attempt) -> Redemption:
        found = await records.find(scope, attempt.key)
        if found is None:
            raise LeftForRetry("nothing of this redemption was recorded")
        return await _on_pos(scope, records.request_of(found), attempt)

    return await scope.services.idempotency.recover(record, execute, REDEMPTION, answered=True)


async def _on_pos(scope: Scope, request: RedemptionRequest, attempt: Attempt) -> Redemption:
    if request.target_pos is Pos.KOUNTA:
        return await redeem_kounta.redeem(scope, request, attempt)
    return await redeem_xseries.redeem(scope, request, attempt)


async def redeem_for_customer(
    scope: Scope,
    *,
    idempotency_key: str,
    customer_id: str,
    reward_id: str,
    sale_id: str,
    quantity: Decimal | None,
) -> Redemption:
    """GraphQL's redeemReward: global ids in, the same redemption as Kounta's URL."""
    if quantity is not None:
        quantity = parse_amount(quantity, "quantity")
    customer = await customers.get_customer(scope, customer_id)
    member = await members.member_of(scope, customer)
    reward = ids.decode(reward_id, Kind.REWARD, scope.merchant.id).local_id
    sale = ids.decode(sale_id, Kind.SALE, scope.merchant.id)
    if sale.pos is None:
        raise ids.not_found(Kind.SALE, sale_id)
    request = RedemptionRequest(
        key=idempotency_key,
        reward_id=reward,
        member_id=member.id,
        target_pos=sale.pos,
        target_id=sale.local_id,
        quantity=quantity,
    )
    return await redeem(scope, request)
