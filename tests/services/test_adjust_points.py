"""adjustPoints: a manual credit or debit with a reason, once per key, on either balance of
record (X-Series' loyalty balance, or the gateway's own ledger)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from gateway.domain import ids
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.runtime import Runtime
from gateway.services.context import Services
from gateway.store import activity, ledger
from tests.api.test_kounta_adapters import JOHN_KOUNTA
from tests.demo_ids import JOHN_SMITH, PEPPER, TONY
from tests.gateways import Gateway, make_kounta_gateway
from tests.support import SandboxHandle

ADJUSTMENTS = "POST /api/2026-07/loyalty/adjustments/bulk"

ADJUST = """
mutation($i: AdjustPointsInput!) {
  adjustPoints(input: $i) {
    __typename
    ... on AdjustPointsSuccess {
      balanceAfter
      activity { id kind points balanceAfter reason pos saleId rewardId redemptionId }
      customer { posId loyaltyBalance }
    }
    ... on Error { code message }
    ... on ValidationError { field }
    ... on InsufficientBalanceError { balance requested }
  }
}"""

HISTORY = """
query($id: ID!) {
  customer(id: $id) {
    activity { totalCount edges { node { kind points balanceAfter reason pos } } }
  }
}"""


@pytest.fixture
async def café(runtime: Runtime, kounta: SandboxHandle) -> AsyncIterator[Gateway]:
    """A Kounta-only merchant: its points live in the gateway's ledger."""
    gw = await make_kounta_gateway(runtime, kounta, "Kounta Café")
    yield gw
    await gw.client.aclose()


async def adjust(
    gw: Gateway, customer: str, points: str, reason: str = "Welcome gift", key: str = "k1"
) -> dict[str, Any]:
    data = await gw.data(
        ADJUST,
        {"i": {"idempotencyKey": key, "customerId": customer, "points": points, "reason": reason}},
    )
    result: dict[str, Any] = data["adjustPoints"]
    return result


async def ledger_balance(gw: Gateway, member: str = JOHN_KOUNTA) -> Decimal:
    async with gw.runtime.db.read() as session:
        return await ledger.balance(session, gw.merchant.id, member)


def xseries_balance(xseries: SandboxHandle, customer_id: str) -> Decimal:
    found = xseries.get("/api/customers", id=customer_id)["customers"][0]
    return Decimal(found["loyalty_balance"])


async def history(gw: Gateway, customer: str) -> dict[str, Any]:
    found: dict[str, Any] = (await gw.data(HISTORY, {"id": customer}))["customer"]["activity"]
    return found


async def test_the_ledger_is_credited_and_debited_and_tells_each_reason(café: Gateway) -> None:
    john = café.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA)
    credited = await adjust(café, john, "10", "Welcome gift", key="a")
    assert credited["__typename"] == "AdjustPointsSuccess"
    assert credited["balanceAfter"] == "10.00"
    assert credited["activity"] | {"id": None} == {
        "id": None, "kind": "ADJUSTED", "points": "10.00", "balanceAfter": "10.00",
        "reason": "Welcome gift", "pos": None, "saleId": None, "rewardId": None,
        "redemptionId": None,
    }  # fmt: skip
    debited = await adjust(café, john, "-4.50", "  Coffee   spilt, \n refunded ", key="b")
    assert debited["balanceAfter"] == "5.50"
    assert debited["activity"]["points"] == "-4.50"
    assert debited["activity"]["reason"] == "Coffee spilt, refunded"
    assert debited["customer"] == {"posId": JOHN_KOUNTA, "loyaltyBalance": "5.50"}
    assert await ledger_balance(café) == Decimal("5.50")
    told = await history(café, john)
    assert told["totalCount"] == 2
    assert [e["node"] for e in told["edges"]] == [
        {"kind": "ADJUSTED", "points": "-4.50", "balanceAfter": "5.50",
         "reason": "Coffee spilt, refunded", "pos": None},
        {"kind": "ADJUSTED", "points": "10.00", "balanceAfter": "10.00",
         "reason": "Welcome gift", "pos": None},
    ]  # fmt: skip


async def test_a_balance_held_at_xseries_moves_there(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    tony = gateway.id(Kind.CUSTOMER, TONY)
    credited = await adjust(gateway, tony, "5.25", "Birthday bonus", key="a")
    assert credited["balanceAfter"] == "55.25"
    assert credited["activity"]["balanceAfter"] == "55.25"
    assert xseries_balance(xseries, TONY) == Decimal("55.25")
    debited = await adjust(gateway, tony, "-55.25", "Points expired", key="b")
    assert debited["balanceAfter"] == "0.00"
    assert xseries_balance(xseries, TONY) == 0
    assert xseries.count(ADJUSTMENTS) == 2
    told = await history(gateway, tony)
    assert [(e["node"]["points"], e["node"]["reason"]) for e in told["edges"]] == [
        ("-55.25", "Points expired"),
        ("5.25", "Birthday bonus"),
    ]


async def test_a_debit_below_zero_is_insufficient_balance_and_moves_nothing(
    gateway: Gateway, café: Gateway, xseries: SandboxHandle
) -> None:
    refused = await adjust(gateway, gateway.id(Kind.CUSTOMER, TONY), "-50.01")
    assert refused == {
        "__typename": "InsufficientBalanceError", "code": "INSUFFICIENT_BALANCE",
        "message": refused["message"], "balance": "50.00", "requested": "50.01",
    }  # fmt: skip
    assert xseries_balance(xseries, TONY) == 50
    assert xseries.count(ADJUSTMENTS) == 0
    john = café.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA)
    assert (await adjust(café, john, "3", key="seed"))["balanceAfter"] == "3.00"
    refused = await adjust(café, john, "-3.01", key="too-much")
    assert (refused["code"], refused["balance"]) == ("INSUFFICIENT_BALANCE", "3.00")
    assert await ledger_balance(café) == 3
    assert (await history(café, john))["totalCount"] == 1


async def test_the_same_key_answers_the_first_answer_and_moves_once(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    tony = gateway.id(Kind.CUSTOMER, TONY)
    first = await adjust(gateway, tony, "7", key="once")
    again = await adjust(gateway, tony, "7", key="once")
    assert again == first and first["balanceAfter"] == "57.00"
    assert xseries_balance(xseries, TONY) == 57
    assert xseries.count(ADJUSTMENTS) == 1
    assert (await history(gateway, tony))["totalCount"] == 1
    refused = await adjust(gateway, tony, "-60", key="refused")
    assert await adjust(gateway, tony, "-60", key="refused") == refused  # a refusal too


async def test_the_same_key_with_other_input_is_refused(café: Gateway) -> None:
    john = café.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA)
    await adjust(café, john, "10", "Welcome gift", key="k")
    for points, reason in (("11", "Welcome gift"), ("10", "Another reason")):
        reused = await adjust(café, john, points, reason, key="k")
        assert (reused["__typename"], reused["code"]) == (
            "IdempotencyKeyReusedError", "IDEMPOTENCY_KEY_REUSED",
        )  # fmt: skip
    assert await ledger_balance(café) == 10


@pytest.mark.parametrize(
    ("points", "reason", "field"),
    [
        ("5", "", "reason"),
        ("5", " \t\n ", "reason"),
        ("5", "x" * 201, "reason"),
        ("5", "bad\x00reason", "reason"),
        ("0", "why", "points"),
        ("-0.00", "why", "points"),
        ("1.234", "why", "points"),
        ("ten", "why", "points"),
        ("1e3", "why", "points"),
        ("- 5", "why", "points"),
        ("--5", "why", "points"),
        ("1000000000", "why", "points"),
    ],
)
async def test_bad_input_is_a_validation_error_naming_the_field(
    café: Gateway, points: str, reason: str, field: str
) -> None:
    john = café.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA)
    refused = await adjust(café, john, points, reason, key="k")
    assert (refused["__typename"], refused["code"], refused["field"]) == (
        "ValidationError", "VALIDATION", field,
    )  # fmt: skip
    assert await ledger_balance(café) == 0
    # Nothing was spent on the refusal: the key still serves a good request.
    assert (await adjust(café, john, "+2", "why", key="k"))["balanceAfter"] == "2.00"


async def test_a_kounta_customer_linked_to_xseries_adjusts_the_xseries_balance(
    runtime: Runtime, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    both = await make_kounta_gateway(runtime, kounta, "Both", xseries=xseries)
    try:
        john = both.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA)
        done = await adjust(both, john, "-20", "Staff correction")
        assert done["balanceAfter"] == "100.00"
        assert xseries_balance(xseries, JOHN_SMITH) == 100
        # One history, whichever POS's customer it is asked through.
        through_xseries = await history(both, both.id(Kind.CUSTOMER, JOHN_SMITH))
        assert through_xseries == await history(both, john)
        assert through_xseries["totalCount"] == 1
    finally:
        await both.client.aclose()


async def test_unknown_other_merchants_and_loyalty_off_customers_are_refused(
    gateway: Gateway, café: Gateway, xseries: SandboxHandle
) -> None:
    theirs = café.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA)
    assert (await adjust(gateway, theirs, "5"))["code"] == "NOT_FOUND"
    assert (await adjust(gateway, gateway.id(Kind.CUSTOMER, "nobody"), "5"))["code"] == "NOT_FOUND"
    off = await adjust(gateway, gateway.id(Kind.CUSTOMER, PEPPER), "5", key="pepper")
    assert off["code"] == "CUSTOMER_LOYALTY_DISABLED"
    assert xseries.count(ADJUSTMENTS) == 0


LOSE_THE_ANSWERS = {  # every try of the HTTP layer lands, and every answer is lost
    "status": 503, "fail_next": 3, "method": "POST", "after": True,
    "path": "/api/2026-07/loyalty/adjustments",
}  # fmt: skip


async def test_an_adjustment_whose_answer_was_lost_is_told_once_by_the_retry(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    tony = gateway.id(Kind.CUSTOMER, TONY)
    xseries.faults(**LOSE_THE_ANSWERS)
    lost = await adjust(gateway, tony, "-10", "Correction", key="lost")
    assert lost["code"] == "UPSTREAM_UNAVAILABLE"
    assert xseries_balance(xseries, TONY) == 40  # it landed all the same, once
    assert (await history(gateway, tony))["totalCount"] == 0
    # The retry sends the same adjustment (X-Series applies a session once) instead of
    # checking a balance it already lowered, and tells it once.
    again = await adjust(gateway, tony, "-10", "Correction", key="lost")
    assert (again["balanceAfter"], again["activity"]["points"]) == ("40.00", "-10.00")
    assert xseries_balance(xseries, TONY) == 40
    told = await history(gateway, tony)
    assert [e["node"]["points"] for e in told["edges"]] == ["-10.00"]


async def test_recovering_an_adjustment_finishes_what_was_sent_and_leaves_the_rest(
    gateway: Gateway, xseries: SandboxHandle, runtime: Runtime
) -> None:
    """The worker's use case: an attempt that got as far as sending is sent again under
    the same session, which X-Series applies once, and told; the caller then gets that."""
    from gateway.services import adjust as adjust_service
    from gateway.services.idempotency import LeftForRetry

    tony = gateway.id(Kind.CUSTOMER, TONY)
    xseries.faults(**LOSE_THE_ANSWERS)
    await adjust(gateway, tony, "3", "Correction", key="sent")
    services = Services(runtime)
    record = await services.idempotency.store.get(gateway.merchant.id, "api:sent")
    assert record is not None and record.checkpoint is not None
    done = await adjust_service.recover(services.scope(gateway.merchant), record)
    assert done is not None and done.balance == Decimal("53")
    async with runtime.db.read() as session:
        assert await activity.total(session, gateway.merchant.id, TONY) == 3
    assert xseries_balance(xseries, TONY) == 53
    replay = await adjust(gateway, tony, "3", "Correction", key="sent")
    assert (replay["balanceAfter"], replay["activity"]["id"]) == (
        "53.00", activity_id(gateway, done.activity.id),
    )  # fmt: skip
    # Nothing sent (the customer could not even be read): left for the caller's retry.
    xseries.faults(status=503, fail_next=3, method="GET")
    assert (await adjust(gateway, tony, "1", key="unsent"))["code"] == "UPSTREAM_UNAVAILABLE"
    unsent = await services.idempotency.store.get(gateway.merchant.id, "api:unsent")
    assert unsent is not None and unsent.checkpoint is None
    with pytest.raises(LeftForRetry):
        await adjust_service.recover(services.scope(gateway.merchant), unsent)
    assert xseries_balance(xseries, TONY) == 53


def activity_id(gw: Gateway, activity_id: str) -> str:
    return ids.encode(Kind.ACTIVITY, None, gw.merchant.id, activity_id)
