"""Rewards: what a member can spend points on, what it costs and what it gives.

- ``PAYMENT``, fixed: ``points_required`` points buy a payment of ``value``.
- ``PAYMENT``, variable: staff choose how many points to use; each point pays ``value``.
  ``points_required`` caps one redemption (0 means no cap but the balance).
- ``PERCENT_DISCOUNT``: ``points_required`` points take ``value`` percent off every line of
  the order (Kounta ``price_variation`` = 1 − value/100).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from gateway.domain.errors import InsufficientBalance, ValidationError
from gateway.domain.money import CENT, MAX_AMOUNT, ZERO, cents_within, round_money

REWARD_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PAY_WITH_POINTS = "pay-with-points"


class RewardKind(StrEnum):
    PAYMENT = "PAYMENT"
    PERCENT_DISCOUNT = "PERCENT_DISCOUNT"


@dataclass(frozen=True)
class Reward:
    id: str
    title: str
    kind: RewardKind
    points_required: Decimal
    value: Decimal
    variable_quantity: bool = False
    terms: str | None = None
    action_label: str = "Redeem"

    def available_to(self, balance: Decimal) -> bool:
        if self.variable_quantity:
            return balance >= CENT
        return balance >= self.points_required

    def offered_points(self, balance: Decimal) -> Decimal:
        """What to show as ``points_required`` to a member: a variable reward's cap is at
        most their balance, in whole cents rounded down (a balance of 12.345 offers 12.34),
        because the POS sends that maximum back as ``quantity``, which takes two places and
        must not exceed the balance."""
        if not self.variable_quantity:
            return self.points_required
        cap = self.points_required if self.points_required > 0 else balance
        return max(ZERO, cents_within(min(cap, balance)))


@dataclass(frozen=True)
class Cost:
    """One redemption: the points it takes and, for a payment, the money it pays."""

    points: Decimal
    amount: Decimal  # PAYMENT: money paid; PERCENT_DISCOUNT: the percent


def cost_of(reward: Reward, quantity: Decimal | None, balance: Decimal) -> Cost:
    """Check a redemption against the reward and the balance; raise what a cashier needs."""
    if reward.variable_quantity:
        if quantity is None:
            raise ValidationError("say how many points to use (quantity)", field="quantity")
        if quantity <= 0 or quantity >= MAX_AMOUNT or quantity != quantity.quantize(CENT):
            raise ValidationError(
                "quantity must be a positive number of points with at most two decimals",
                field="quantity",
            )
        if reward.points_required > 0 and quantity > reward.points_required:
            raise ValidationError(
                f"this reward takes at most {reward.points_required} points", field="quantity"
            )
        points = quantity
        amount = round_money(quantity * reward.value)
    else:
        if quantity is not None and quantity != reward.points_required:
            raise ValidationError(
                f"this reward always takes {reward.points_required} points", field="quantity"
            )
        points = reward.points_required
        amount = reward.value
    if points > balance:
        raise InsufficientBalance.of(balance, points, "points")
    return Cost(points, amount)


def discount_variation(percent: Decimal) -> Decimal:
    """Kounta's ``price_variation`` multiplier for a percent off: 10 → 0.9."""
    return 1 - percent / 100


def check_new_reward(reward: Reward) -> Reward:
    """The catalogue's rules for a reward a merchant defines."""
    if not REWARD_ID.match(reward.id):
        raise ValidationError(
            "a reward id is lowercase letters, digits and dashes (e.g. free-coffee)", field="id"
        )
    if not reward.title.strip():
        raise ValidationError("a reward needs a title", field="title")
    if reward.points_required < 0 or reward.value <= 0:
        raise ValidationError("points must be >= 0 and value > 0", field="value")
    if not reward.variable_quantity and reward.points_required <= 0:
        raise ValidationError("a fixed reward costs some points", field="points")
    if reward.kind is RewardKind.PERCENT_DISCOUNT:
        if reward.variable_quantity:
            raise ValidationError("a percent discount cannot be variable", field="variable")
        if reward.value >= 100:
            raise ValidationError("a discount is less than 100 percent", field="value")
    return reward


def default_rewards() -> list[Reward]:
    """Every merchant starts with this one: spend any points, 1 point = 1 currency unit."""
    return [
        Reward(
            id=PAY_WITH_POINTS,
            title="Pay with points",
            kind=RewardKind.PAYMENT,
            points_required=ZERO,
            value=Decimal(1),
            variable_quantity=True,
            terms="Use any number of points; each pays 1.00",
            action_label="Pay",
        )
    ]
