"""The reward catalogue, and what a member can redeem right now."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from gateway.domain import offers
from gateway.domain.errors import NotFound
from gateway.domain.rewards import Reward, check_new_reward
from gateway.runtime import Runtime
from gateway.services.context import Scope
from gateway.services.members import Member
from gateway.store import rewards as store
from gateway.store.crypto import derive_keys


@dataclass(frozen=True)
class RewardOffer:
    """A reward as offered to one member: available or not, and its signed offer."""

    reward: Reward
    available: bool
    points_required: Decimal
    offer: str


async def list_rewards(scope: Scope) -> list[Reward]:
    """The active catalogue (remembered for a few seconds in this process: every reward
    lookup from the POS needs it; a change made elsewhere shows within ``Memo.ttl_s``)."""

    async def load() -> list[Reward]:
        async with scope.runtime.db.read() as session:
            return await store.list_rewards(session, scope.merchant.id)

    return await scope.services.memo.get_or_load("rewards", scope.merchant.id, load)


async def get_reward(scope: Scope, reward_id: str, *, include_archived: bool = False) -> Reward:
    async with scope.runtime.db.read() as session:
        reward = await store.get_reward(
            session, scope.merchant.id, reward_id, include_archived=include_archived
        )
    if reward is None:
        raise NotFound(f"no reward {reward_id!r}", field="rewardId")
    return reward


async def add_reward(scope: Scope, reward: Reward) -> Reward:
    async with scope.runtime.db.transaction() as session:
        added = await store.add_reward(session, scope.merchant.id, check_new_reward(reward))
    scope.services.memo.forget("rewards", scope.merchant.id)
    return added


async def archive_reward(scope: Scope, reward_id: str) -> None:
    async with scope.runtime.db.transaction() as session:
        if not await store.archive_reward(session, scope.merchant.id, reward_id):
            raise NotFound(f"no active reward {reward_id!r}")
    scope.services.memo.forget("rewards", scope.merchant.id)


OFFERS = "gateway/kounta-offers/v1"


def offer_key(runtime: Runtime) -> bytes:
    return offer_keys(runtime)[0]


def offer_keys(runtime: Runtime) -> tuple[bytes, ...]:
    """The current key first; the others read offers handed out before a key rotation."""
    return derive_keys(runtime.settings.secret_keys_bytes, OFFERS)


async def offers_for(scope: Scope, member: Member) -> list[RewardOffer]:
    """Every reward with the member's availability, and a fresh signed offer each."""
    balance = member.customer.balance
    expires = int(time.time()) + scope.runtime.settings.offer_ttl_s
    key = offer_key(scope.runtime)
    return [
        RewardOffer(
            reward=reward,
            available=member.customer.loyalty_enabled and reward.available_to(balance),
            points_required=reward.offered_points(balance),
            offer=offers.mint(key, scope.merchant.id, member.id, reward.id, expires),
        )
        for reward in await list_rewards(scope)
    ]


def read_offer(runtime: Runtime, token: str) -> offers.Offer:
    """A genuine, unexpired offer, or ``OfferRefused``; it names its merchant."""
    key, *previous = offer_keys(runtime)
    return offers.verify(key, token, time.time(), previous=previous)
