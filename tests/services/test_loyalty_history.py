"""``Customer.activity`` (the history, a Relay connection) and ``node(id:)``."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.runtime import Runtime
from tests.api.test_bad_input import post_json
from tests.api.test_kounta_adapters import JOHN_KOUNTA, JOHN_ORDER
from tests.demo_ids import JOHNNY_SALE, TONY
from tests.gateways import Gateway, KountaPos, make_kounta_gateway, reward_url
from tests.services.test_adjust_points import adjust
from tests.support import SandboxHandle

PAGE = """
query($id: ID!, $first: Int, $after: String) {
  customer(id: $id) {
    activity(first: $first, after: $after) {
      totalCount
      edges { cursor node { id points reason } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}"""

NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Customer { posId loyaltyBalance }
    ... on Sale { posId pos }
    ... on Reward { title }
    ... on Redemption {
      status pointsDebited redeemed: reward { id } on: sale { posId } who: customer { posId }
    }
    ... on LoyaltyActivity {
      kind points reason where: pos saleId rewardId redemptionId
      sale { posId } reward { title } customer { posId }
    }
  }
}"""


@pytest.fixture
async def café(runtime: Runtime, kounta: SandboxHandle) -> AsyncIterator[Gateway]:
    gw = await make_kounta_gateway(runtime, kounta, "Kounta Café")
    yield gw
    await gw.client.aclose()


def john(gw: Gateway) -> str:
    return gw.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA)


async def page(
    gw: Gateway, customer: str, first: int | None = None, after: str | None = None
) -> dict[str, Any]:
    variables: dict[str, Any] = {"id": customer, "first": first, "after": after}
    found: dict[str, Any] = (await gw.data(PAGE, variables))["customer"]["activity"]
    return found


async def refused(gw: Gateway, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The one top-level error of a query refused for its input (never a 500)."""
    response = await post_json(gw, query, variables)
    assert response.status_code == 200, response.text
    errors = response.json()["errors"]
    assert len(errors) == 1
    error: dict[str, Any] = errors[0]
    return error


def reasons(found: dict[str, Any]) -> list[str]:
    return [edge["node"]["reason"] for edge in found["edges"]]


async def test_pages_are_newest_first_without_gaps_or_repeats_while_new_ones_arrive(
    café: Gateway,
) -> None:
    for n in range(1, 8):
        await adjust(café, john(café), str(n), f"gift {n}", key=f"k{n}")
    first = await page(café, john(café), first=3)
    assert reasons(first) == ["gift 7", "gift 6", "gift 5"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    assert first["pageInfo"]["startCursor"] == first["edges"][0]["cursor"]
    assert first["pageInfo"]["endCursor"] == first["edges"][-1]["cursor"]
    # Two arrive between pages: they are newer, so the pages already given do not shift.
    for n in (8, 9):
        await adjust(café, john(café), str(n), f"gift {n}", key=f"k{n}")
    second = await page(café, john(café), first=3, after=first["pageInfo"]["endCursor"])
    assert reasons(second) == ["gift 4", "gift 3", "gift 2"]
    assert second["pageInfo"]["hasPreviousPage"] is True
    third = await page(café, john(café), first=3, after=second["pageInfo"]["endCursor"])
    assert reasons(third) == ["gift 1"]
    assert third["pageInfo"]["hasNextPage"] is False
    assert third["totalCount"] == 9
    # The same cursor gives the same page again.
    again = await page(café, john(café), first=3, after=first["pageInfo"]["endCursor"])
    assert again["edges"] == second["edges"]
    newest = await page(café, john(café))
    assert reasons(newest) == [f"gift {n}" for n in range(9, 0, -1)]  # default first: 20


async def test_an_empty_history_is_an_empty_connection(café: Gateway) -> None:
    assert await page(café, john(café)) == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {"hasNextPage": False, "hasPreviousPage": False,
                     "startCursor": None, "endCursor": None},
    }  # fmt: skip


@pytest.mark.parametrize("first", [0, -1, 101, 2**31 - 1])
async def test_first_is_capped_at_100_and_named_when_refused(café: Gateway, first: int) -> None:
    error = await refused(café, PAGE, {"id": john(café), "first": first})
    assert error["extensions"] == {"code": "VALIDATION", "field": "first"}
    assert "first" in error["message"] and "100" in error["message"]


async def test_a_page_of_100_is_served(café: Gateway) -> None:
    await adjust(café, john(café), "1", key="one")
    assert len((await page(café, john(café), first=100))["edges"]) == 1


async def test_a_cursor_that_is_not_one_of_this_list_is_refused_naming_after(
    café: Gateway, gateway: Gateway
) -> None:
    for n in range(3):
        await adjust(café, john(café), "1", f"gift {n}", key=f"k{n}")
    cursor = (await page(café, john(café), first=1))["pageInfo"]["endCursor"]
    payload, _, signature = cursor.partition(".")
    forged = base64.urlsafe_b64encode(b'["c1","2999-01-01T00:00:00+00:00","z"]').decode()
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    await adjust(gateway, gateway.id(Kind.CUSTOMER, TONY), "1", key="tony")
    tony_cursor = (await page(gateway, gateway.id(Kind.CUSTOMER, TONY)))["pageInfo"]["endCursor"]
    for bad in (
        "garbage", "", ".", "\ud800", "A" * 5000, f"{flipped}.{signature}",
        f"{forged.rstrip('=')}.{signature}", payload, cursor + "x", tony_cursor,
    ):  # fmt: skip
        error = await refused(café, PAGE, {"id": john(café), "first": 1, "after": bad})
        assert error["extensions"] == {"code": "VALIDATION", "field": "after"}, bad


async def test_a_redemption_is_told_with_its_sale_reward_and_redemption(
    café: Gateway, kounta: SandboxHandle
) -> None:
    await adjust(café, john(café), "50", "Opening balance", key="seed")
    pos = KountaPos(café)
    member = (await pos.lookup(JOHN_KOUNTA, JOHN_KOUNTA)).json()
    assert await pos.redeem(reward_url(member, "free-coffee"), JOHN_ORDER) == {"success": True}
    newest = (await page(café, john(café), first=1))["edges"][0]["node"]
    found = (await café.data(NODE, {"id": newest["id"]}))["node"]
    redemption_id = found.pop("redemptionId")
    assert found == {
        "__typename": "LoyaltyActivity", "id": newest["id"], "kind": "REDEEMED",
        "points": "-40.00", "reason": found["reason"], "where": "KOUNTA",
        "saleId": café.id(Kind.SALE, JOHN_ORDER, Pos.KOUNTA),
        "rewardId": ids.encode(Kind.REWARD, None, café.merchant.id, "free-coffee"),
        "sale": {"posId": JOHN_ORDER}, "reward": {"title": "Free coffee"},
        "customer": {"posId": JOHN_KOUNTA},
    }  # fmt: skip
    assert "Free coffee" in found["reason"]
    redemption = (await café.data(NODE, {"id": redemption_id}))["node"]
    assert redemption == {
        "__typename": "Redemption", "id": redemption_id, "status": "COMPLETED",
        "pointsDebited": "40.00", "redeemed": {"id": found["rewardId"]},
        "on": {"posId": JOHN_ORDER}, "who": {"posId": JOHN_KOUNTA},
    }  # fmt: skip


async def test_node_finds_each_kind_by_its_global_id(gateway: Gateway) -> None:
    done = await adjust(gateway, gateway.id(Kind.CUSTOMER, TONY), "5", "Thanks", key="k")
    reward = ids.encode(Kind.REWARD, None, gateway.merchant.id, "pay-with-points")
    expected = {
        gateway.id(Kind.CUSTOMER, TONY): {"posId": TONY, "loyaltyBalance": "55.00"},
        gateway.id(Kind.SALE, JOHNNY_SALE): {"posId": JOHNNY_SALE, "pos": "XSERIES"},
        reward: {"title": "Pay with points"},
        done["activity"]["id"]: {
            "kind": "ADJUSTED", "points": "5.00", "reason": "Thanks", "where": None,
            "saleId": None, "rewardId": None, "redemptionId": None, "sale": None,
            "reward": None, "customer": {"posId": TONY},
        },
    }  # fmt: skip
    for global_id, fields in expected.items():
        found = (await gateway.data(NODE, {"id": global_id}))["node"]
        assert found.pop("id") == global_id
        found.pop("__typename")
        assert found == fields


async def test_another_merchants_ids_and_unknown_ones_are_null(
    gateway: Gateway, café: Gateway
) -> None:
    done = await adjust(café, john(café), "5", key="k")
    theirs = [
        john(café),
        done["activity"]["id"],
        ids.encode(Kind.REWARD, None, café.merchant.id, "free-coffee"),
        café.id(Kind.SALE, JOHN_ORDER, Pos.KOUNTA),
        ids.encode(Kind.REDEMPTION, Pos.KOUNTA, café.merchant.id, "r1"),
    ]
    for global_id in theirs:
        assert (await gateway.data(NODE, {"id": global_id}))["node"] is None
    assert (await café.data(NODE, {"id": done["activity"]["id"]}))["node"] is not None
    unknown = [
        gateway.id(Kind.CUSTOMER, "nobody"),
        gateway.id(Kind.SALE, "no-such-sale"),
        ids.encode(Kind.REWARD, None, gateway.merchant.id, "no-such-reward"),
        ids.encode(Kind.REDEMPTION, Pos.XSERIES, gateway.merchant.id, "no-such-redemption"),
        ids.encode(Kind.ACTIVITY, None, gateway.merchant.id, "no-such-activity"),
        ids.encode(Kind.PAYMENT, Pos.XSERIES, gateway.merchant.id, "p1"),  # no node kind
    ]
    for global_id in unknown:
        assert (await gateway.data(NODE, {"id": global_id}))["node"] is None


@pytest.mark.parametrize(
    "value",
    [
        "not-an-id!",
        "",
        "A" * 5000,
        base64.urlsafe_b64encode(b"g1|Spaceship|-|m|1").decode(),
        base64.urlsafe_b64encode(b"g0|Customer|XSERIES|m|1").decode(),
        base64.urlsafe_b64encode(b"g1|Customer|XSERIES|m").decode(),
        base64.urlsafe_b64encode(b"g1|Customer|VEND|m|1").decode(),
    ],
)
async def test_what_was_never_an_id_is_a_validation_error_naming_id(
    gateway: Gateway, value: str
) -> None:
    error = await refused(gateway, NODE, {"id": value})
    assert error["extensions"] == {"code": "VALIDATION", "field": "id"}


async def test_a_customer_who_holds_no_balance_has_no_history(
    runtime: Runtime, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    """Lucy is a Kounta customer not linked to X-Series, where this merchant's points live."""
    both = await make_kounta_gateway(runtime, kounta, "Both", xseries=xseries)
    try:
        lucy = both.id(Kind.CUSTOMER, "3843", Pos.KOUNTA)
        found = await page(both, lucy)
        assert (found["totalCount"], found["edges"]) == (0, [])
        error = await refused(both, PAGE, {"id": lucy, "after": "anything"})
        assert error["extensions"] == {"code": "VALIDATION", "field": "after"}
    finally:
        await both.client.aclose()
