"""Reward costs, availability and signed offers, as pure functions."""

from __future__ import annotations

import string
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain import offers
from gateway.domain.errors import ErrorCode, GatewayError
from gateway.domain.rewards import (
    Reward,
    RewardKind,
    check_new_reward,
    cost_of,
    default_rewards,
    discount_variation,
)

COFFEE = Reward("free-coffee", "Free coffee", RewardKind.PAYMENT, Decimal(40), Decimal("4.60"))
PAY = default_rewards()[0]
TEN_OFF = Reward("ten-off", "10% off", RewardKind.PERCENT_DISCOUNT, Decimal(100), Decimal(10))
KEY = b"k" * 32


def test_fixed_reward_costs_its_points_and_pays_its_value() -> None:
    cost = cost_of(COFFEE, None, Decimal(120))
    assert (cost.points, cost.amount) == (Decimal(40), Decimal("4.60"))
    assert COFFEE.available_to(Decimal(40)) and not COFFEE.available_to(Decimal("39.99"))


def test_variable_reward_costs_the_quantity_chosen() -> None:
    cost = cost_of(PAY, Decimal(15), Decimal(120))
    assert (cost.points, cost.amount) == (Decimal(15), Decimal(15))
    assert PAY.offered_points(Decimal("12.5")) == Decimal("12.5")  # no cap: the balance


def test_capped_variable_reward() -> None:
    capped = Reward("pts", "Points", RewardKind.PAYMENT, Decimal(50), Decimal("0.10"), True)
    assert capped.offered_points(Decimal(80)) == 50 and capped.offered_points(Decimal(20)) == 20
    assert cost_of(capped, Decimal(30), Decimal(80)).amount == Decimal("3.00")
    with pytest.raises(GatewayError):
        cost_of(capped, Decimal(51), Decimal(80))


@pytest.mark.parametrize(
    ("reward", "quantity", "balance", "code"),
    [
        (COFFEE, None, Decimal(39), ErrorCode.INSUFFICIENT_BALANCE),
        (COFFEE, Decimal(10), Decimal(100), ErrorCode.VALIDATION),
        (PAY, None, Decimal(100), ErrorCode.VALIDATION),
        (PAY, Decimal(0), Decimal(100), ErrorCode.VALIDATION),
        (PAY, Decimal("1.234"), Decimal(100), ErrorCode.VALIDATION),
        (PAY, Decimal(101), Decimal(100), ErrorCode.INSUFFICIENT_BALANCE),
    ],
)
def test_cost_refusals(
    reward: Reward, quantity: Decimal | None, balance: Decimal, code: ErrorCode
) -> None:
    with pytest.raises(GatewayError) as refused:
        cost_of(reward, quantity, balance)
    assert refused.value.code is code


def test_percent_discount_is_a_price_variation() -> None:
    assert discount_variation(Decimal(10)) == Decimal("0.9")
    assert discount_variation(Decimal("12.5")) == Decimal("0.875")


@pytest.mark.parametrize(
    "bad",
    [
        Reward("Bad Id", "x", RewardKind.PAYMENT, Decimal(1), Decimal(1)),
        Reward("no-title", " ", RewardKind.PAYMENT, Decimal(1), Decimal(1)),
        Reward("free", "x", RewardKind.PAYMENT, Decimal(0), Decimal(1)),
        Reward("all-off", "x", RewardKind.PERCENT_DISCOUNT, Decimal(1), Decimal(100)),
        Reward("var-off", "x", RewardKind.PERCENT_DISCOUNT, Decimal(1), Decimal(5), True),
        Reward("worthless", "x", RewardKind.PAYMENT, Decimal(1), Decimal(0)),
    ],
)
def test_catalogue_rules(bad: Reward) -> None:
    with pytest.raises(GatewayError):
        check_new_reward(bad)
    assert check_new_reward(COFFEE) is COFFEE


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10000), places=2))
def test_a_redemption_never_takes_more_than_the_balance(balance: Decimal) -> None:
    for reward in (COFFEE, TEN_OFF):
        if reward.available_to(balance):
            assert cost_of(reward, None, balance).points <= balance
    assert cost_of(PAY, balance, balance).points == balance


def test_offers_verify_and_name_what_they_offer() -> None:
    token = offers.mint(KEY, "merchant", "member", "free-coffee", expires_at=2000)
    offer = offers.verify(KEY, token, now=1999)
    assert (offer.merchant_id, offer.member_id, offer.reward_id) == (
        "merchant",
        "member",
        "free-coffee",
    )
    assert offers.mint(KEY, "merchant", "member", "free-coffee", 2000) != token  # fresh nonce


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: _flip(t, len(t) - 5),  # a signature character altered
        lambda t: "x" + t,  # payload altered
        lambda t: t.split(".")[0],  # no signature
        lambda t: "",
        lambda t: "..",
    ],
)
def test_altered_offers_are_refused(mangle: object) -> None:
    token = offers.mint(KEY, "merchant", "member", "free-coffee", expires_at=2000)
    with pytest.raises(offers.OfferRefused):
        offers.verify(KEY, mangle(token), now=1000)  # type: ignore[operator]


def test_offers_expire_and_need_our_key() -> None:
    token = offers.mint(KEY, "m", "c", "r", expires_at=2000)
    with pytest.raises(offers.OfferRefused, match="expired"):
        offers.verify(KEY, token, now=2001)
    with pytest.raises(offers.OfferRefused, match="not valid"):
        offers.verify(b"other" * 8, token, now=1000)


def test_only_the_canonical_spelling_of_an_offer_is_accepted() -> None:
    """The last base64 character has two unused bits: flipping them decodes to the same
    bytes. Such a re-spelled offer must be refused, or it would redeem twice."""
    import base64

    token = offers.mint(KEY, "merchant", "member", "free-coffee", expires_at=2000)
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    signature = token.rsplit(".", 1)[1]
    same_bytes = [
        token[:-1] + c
        for c in alphabet
        if c != token[-1]
        and base64.urlsafe_b64decode(signature[:-1] + c + "=")
        == base64.urlsafe_b64decode(signature + "=")
    ]
    assert same_bytes  # there are such spellings
    for respelled in same_bytes:
        with pytest.raises(offers.OfferRefused):
            offers.verify(KEY, respelled, now=1000)
    assert offers.verify(KEY, token, now=1000).reward_id == "free-coffee"
