"""Mutations: each returns its success type or an ``Error`` member, never a top-level
error for an expected failure (docs/architecture.md, "Errors")."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Union

import strawberry

from gateway.api.graphql.errors import ERROR_TYPES, Error, to_graphql, top_level
from gateway.api.graphql.history import LoyaltyActivity
from gateway.api.graphql.inputs import (
    AdjustPointsInput,
    CreateSaleInput,
    PayWithLoyaltyInput,
    RedeemRewardInput,
)
from gateway.api.graphql.types import Customer, Info, LoyaltyPayment, Redemption, Reward, Sale
from gateway.domain import ids
from gateway.domain.errors import GatewayError, NotFound
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.services import adjust, create_sale, customers, pay_with_loyalty, redeem


@strawberry.type
class CreateSaleSuccess:
    sale: Sale


@strawberry.type
class PayWithLoyaltySuccess:
    payment: LoyaltyPayment
    sale: Sale


@strawberry.type
class RedeemRewardSuccess:
    redemption: Redemption


@strawberry.type
class AdjustPointsSuccess:
    activity: LoyaltyActivity = strawberry.field(
        description="The movement, as the history tells it."
    )
    balance_after: Decimal = strawberry.field(description="The balance right after the adjustment.")
    customer_id: strawberry.Private[str]

    @strawberry.field(description="The customer, as the POS shows them now.")
    async def customer(self, info: Info) -> Customer | None:
        scope = info.context.scope
        try:
            found = await customers.get_customer(scope, self.customer_id)
        except NotFound:
            return None
        except GatewayError as error:
            raise top_level(error) from None
        return Customer.of(found, scope.merchant.id)


def result_union(name: str, success: type) -> Any:
    """``success`` or any expected failure: every result union offers every ``Error``, so
    a failure the service raises always has a member to be (ERROR_TYPES is the list)."""
    return Annotated[Union[(success, *ERROR_TYPES)], strawberry.union(name)]


if TYPE_CHECKING:  # what mypy checks the resolvers against
    CreateSaleResult = CreateSaleSuccess | Error
    PayWithLoyaltyResult = PayWithLoyaltySuccess | Error
    RedeemRewardResult = RedeemRewardSuccess | Error
    AdjustPointsResult = AdjustPointsSuccess | Error
else:
    CreateSaleResult = result_union("CreateSaleResult", CreateSaleSuccess)
    PayWithLoyaltyResult = result_union("PayWithLoyaltyResult", PayWithLoyaltySuccess)
    RedeemRewardResult = result_union("RedeemRewardResult", RedeemRewardSuccess)
    AdjustPointsResult = result_union("AdjustPointsResult", AdjustPointsSuccess)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Post an X-Series sale that earns its loyalty.")
    async def create_sale(self, info: Info, input: CreateSaleInput) -> CreateSaleResult:
        scope = info.context.scope
        try:
            sale = await create_sale.create_sale(scope, input.to_service())
        except GatewayError as error:
            return to_graphql(error)
        return CreateSaleSuccess(sale=Sale.of(sale, scope.merchant.id))

    @strawberry.mutation(description="Pay part or all of an open X-Series sale with loyalty.")
    async def pay_with_loyalty(
        self, info: Info, input: PayWithLoyaltyInput
    ) -> PayWithLoyaltyResult:
        scope = info.context.scope
        try:
            paid = await pay_with_loyalty.pay_with_loyalty(
                scope,
                idempotency_key=input.idempotency_key,
                sale_id=str(input.sale_id),
                amount=input.amount,
            )
        except GatewayError as error:
            return to_graphql(error)
        sale = Sale.of(paid.sale, scope.merchant.id)
        payment = LoyaltyPayment(
            id=strawberry.ID(ids.encode(Kind.PAYMENT, Pos.XSERIES, scope.merchant.id, paid.id)),
            amount=paid.amount,
            balance_after=paid.balance_after,
            sale=sale,
        )
        return PayWithLoyaltySuccess(payment=payment, sale=sale)

    @strawberry.mutation(description="Redeem a reward on a Kounta order or an X-Series sale.")
    async def redeem_reward(self, info: Info, input: RedeemRewardInput) -> RedeemRewardResult:
        scope = info.context.scope
        try:
            done = await redeem.redeem_for_customer(
                scope,
                idempotency_key=input.idempotency_key,
                customer_id=str(input.customer_id),
                reward_id=str(input.reward_id),
                sale_id=str(input.sale_id),
                quantity=input.quantity,
            )
        except GatewayError as error:
            return to_graphql(error)
        merchant_id = scope.merchant.id
        return RedeemRewardSuccess(
            redemption=Redemption(
                id=strawberry.ID(
                    ids.encode(Kind.REDEMPTION, done.target_pos, merchant_id, done.id)
                ),
                reward=Reward.of(done.reward, merchant_id),
                sale=Sale.of(done.sale, merchant_id),
                points_debited=done.points,
                amount_applied=done.amount,
                status=done.status,
                member_id=done.member_id,
                merchant_id=merchant_id,
            )
        )

    @strawberry.mutation(
        description="Credit or debit a customer's balance by hand, with a reason they will read "
        "in their history. Never below zero (INSUFFICIENT_BALANCE)."
    )
    async def adjust_points(self, info: Info, input: AdjustPointsInput) -> AdjustPointsResult:
        scope = info.context.scope
        try:
            done = await adjust.adjust_points(
                scope,
                idempotency_key=input.idempotency_key,
                customer_id=str(input.customer_id),
                points=input.points,
                reason=input.reason,
            )
        except GatewayError as error:
            return to_graphql(error)
        return AdjustPointsSuccess(
            activity=LoyaltyActivity.of(done.activity, scope.merchant.id),
            balance_after=done.balance,
            customer_id=str(input.customer_id),
        )
