"""The JSON of Kounta's customer search and reward lookup: one type and one spelling per
field across both, offers a cashier can send back, and the required ``email_address``
(docs/pos-contracts.md, "Kounta")."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from gateway.runtime import Runtime
from gateway.sandbox.kounta import DEMO_FIXTURES
from gateway.store import ledger
from tests.api.test_kounta_adapters import JOHN_KOUNTA, JOHN_ORDER, john, kounta_order
from tests.demo_ids import JOHN_SMITH, PEPPER
from tests.gateways import Gateway, KountaPos, make_kounta_gateway, reward_url
from tests.support import SandboxHandle


def exact(text: str) -> Any:
    """A body with its numbers as the exact text they were written in."""
    return json.loads(text, parse_float=Decimal)


def rewards_of(member: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {reward["id"]: reward for reward in member["rewards"]}


async def test_points_have_one_type_and_one_spelling_in_both_answers(both: Gateway) -> None:
    pos = KountaPos(both)
    found = (await pos.search("John Smith")).json()["members"][JOHN_SMITH]
    looked_up = await john(pos)
    for member in (found, looked_up):
        assert member["current_points"] == "120.00"
        offered = {rid: r["points_required"] for rid, r in rewards_of(member).items()}
        assert offered == {"pay-with-points": 120, "free-coffee": 40, "ten-off": 100}
        assert all(type(points) is int for points in offered.values()), offered
    search_text = (await pos.search("John Smith")).text
    lookup_text = (await pos.lookup(JOHN_KOUNTA, JOHN_SMITH)).text
    for text in (search_text, lookup_text):
        assert '"points_required":120,' in text and '"current_points":"120.00"' in text


@pytest.fixture
async def café(runtime: Runtime, kounta: SandboxHandle) -> AsyncIterator[Gateway]:
    """Kounta only: the ledger holds any balance a test gives."""
    gw = await make_kounta_gateway(runtime, kounta, "Kounta Café")
    yield gw
    await gw.client.aclose()


async def give(gw: Gateway, amount: str) -> None:
    async with gw.runtime.db.transaction() as session:
        await ledger.append(session, gw.merchant.id, JOHN_KOUNTA, Decimal(amount), amount, "test")


async def balance(gw: Gateway) -> Decimal:
    async with gw.runtime.db.read() as session:
        return await ledger.balance(session, gw.merchant.id, JOHN_KOUNTA)


@pytest.mark.parametrize(
    ("held", "offered", "left"),
    [("12.345", "12.34", "0.005"), ("7.999", "7.99", "0.009")],
)
async def test_the_most_a_variable_reward_offers_can_be_redeemed_as_it_is(
    café: Gateway, kounta: SandboxHandle, held: str, offered: str, left: str
) -> None:
    await give(café, held)
    pos = KountaPos(café)
    response = await pos.lookup(JOHN_KOUNTA, JOHN_KOUNTA)
    member = exact(response.text)
    most = rewards_of(member)["pay-with-points"]["points_required"]
    assert str(most) == offered
    assert member["current_points"] == f"{Decimal(offered):.2f}"
    url = reward_url(member, "pay-with-points")
    assert await pos.redeem(url, JOHN_ORDER, quantity=str(most)) == {"success": True}
    assert await balance(café) == Decimal(left)
    payments = kounta_order(kounta, JOHN_ORDER)["payments"]
    assert [Decimal(str(p["amount"])) for p in payments] == [Decimal(offered)]


async def test_a_member_without_an_email_gets_one_that_cannot_be_delivered(
    both: Gateway,
) -> None:
    """Pepper has no email at X-Series; Kounta requires ``email_address``."""
    members = (await KountaPos(both).search("Pepper")).json()["members"]
    assert list(members) == [PEPPER]
    assert members[PEPPER]["email_address"] == f"member-{PEPPER}@no-email.invalid"
    john_record = (await KountaPos(both).search("John Smith")).json()["members"][JOHN_SMITH]
    assert john_record["email_address"] == "john@example.com"


async def test_without_an_email_in_both_answers(café: Gateway, kounta: SandboxHandle) -> None:
    """A Kounta customer known by a mobile number only, in a Kounta-only café."""
    fixtures = json.loads(DEMO_FIXTURES.read_text())
    tony = next(c for c in fixtures["customers"] if c["first_name"] == "Tony")
    tony["email"] = ""
    kounta.reset(fixtures)
    pos = KountaPos(café)
    found = (await pos.search("Tony Stark")).json()["members"]
    looked_up = (await pos.lookup(str(tony["id"]), str(tony["id"]))).json()
    expected = f"member-{tony['id']}@no-email.invalid"
    assert [m["email_address"] for m in found.values()] == [expected]
    assert looked_up["email_address"] == expected
