"""A Kounta order's life after it earned or paid with points (issue 10, Build 1, 2, 5): the
sandbox's till refunds, rejects and deletes orders and delivers the webhooks to a real
gateway server; the balance ends where the rules say, once, however often the webhooks
come, and the worker's reconciliation does the same when they never come."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.domain.merchant import Pos, VoidPolicy
from gateway.runtime import Runtime
from gateway.sandbox.xseries import SCOPES
from gateway.services import connect
from gateway.services.context import Services
from gateway.services.recovery import recover_once
from gateway.settings import Settings
from gateway.store import activity, checkpoints, ledger
from gateway.store.merchants import set_void_policy
from tests.api.test_kounta_adapters import JOHN_KOUNTA, JOHN_ORDER, kounta_order, xseries_balance
from tests.demo_ids import JOHN_SMITH
from tests.gateways import KOUNTA_COMPANY, Gateway, KountaPos, make_kounta_gateway, reward_url
from tests.services.test_loyalty_permission import NO_LOYALTY_WRITE
from tests.support import SandboxHandle, ServerThread

CASH = 1
EARNED = Decimal("3.30")  # JOHN_ORDER at a ratio of 0.10 (tests/services/test_kounta_ledger.py)
TOTAL = Decimal("37.95")


@pytest.fixture
def settings(settings: Settings, public_port: int) -> Settings:
    return settings.model_copy(update={"public_url": f"http://127.0.0.1:{public_port}"})


@pytest.fixture
async def café(
    runtime: Runtime, live: ServerThread, kounta: SandboxHandle
) -> AsyncIterator[Gateway]:
    """A Kounta-only café: the gateway's ledger keeps the balance."""
    gw = await make_kounta_gateway(runtime, kounta, "Harbour Café")
    yield gw
    await gw.client.aclose()


def post_json(kounta: SandboxHandle, path: str, body: dict[str, Any]) -> httpx.Response:
    """Money as JSON numbers written from Decimal (never through float)."""
    text = "{" + ", ".join(f'"{k}": {v}' for k, v in body.items()) + "}"
    headers = {"Authorization": f"Bearer {kounta.token}", "Content-Type": "application/json"}
    return kounta._http.post(path, content=text, headers=headers)


def till(kounta: SandboxHandle, order_id: str, act: str, deliveries: int = 1,
         **body: Any) -> list[int | None]:  # fmt: skip
    """The till acts on the order; the statuses the gateway answered its webhooks with."""
    response = post_json(kounta, f"/_sandbox/orders/{order_id}/{act}",
                         {"deliveries": deliveries, **body})  # fmt: skip
    assert response.status_code == 200, response.text
    return [d["status"] for d in response.json()["deliveries"]]


def pay_cash(kounta: SandboxHandle, order_id: str, amount: Decimal) -> None:
    path = f"/v1/companies/{KOUNTA_COMPANY}/orders/{order_id}/payments"
    response = post_json(kounta, path, {"method_id": CASH, "amount": amount})
    assert response.status_code == 201, response.text


def refund(kounta: SandboxHandle, order_id: str, amount: Decimal, deliveries: int = 1) -> None:
    statuses = till(kounta, order_id, "refund", deliveries, method_id=CASH, amount=-amount)
    assert statuses == [200] * deliveries


async def balance(gw: Gateway, member: str = JOHN_KOUNTA) -> Decimal:
    async with gw.runtime.db.read() as session:
        return await ledger.balance(session, gw.merchant.id, member)


async def history(gw: Gateway, member: str = JOHN_KOUNTA) -> list[tuple[str, Decimal, str]]:
    """The member's history, oldest first: (kind, points, reason)."""
    async with gw.runtime.db.read() as session:
        rows, _ = await activity.page(session, gw.merchant.id, member, first=100)
    return [(row.kind.value, row.points, row.reason) for row in reversed(rows)]


async def give(gw: Gateway, amount: str, key: str = "seed") -> None:
    async with gw.runtime.db.transaction() as session:
        await ledger.append(session, gw.merchant.id, JOHN_KOUNTA, Decimal(amount), key, "test")


async def reconcile(runtime: Runtime) -> None:
    report = await recover_once(Services(runtime), reconcile=True)
    assert report.still_failing == []
    assert all(not done.failed for done in report.reconciled), report.reconciled


def share(refunded: Decimal) -> Decimal:
    return (EARNED * refunded / TOTAL).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def completed_and_earned(café: Gateway, kounta: SandboxHandle, deliveries: int = 1) -> None:
    pay_cash(kounta, JOHN_ORDER, TOTAL)
    till(kounta, JOHN_ORDER, "complete", deliveries)
    if deliveries:
        assert await balance(café) == EARNED


async def test_a_partial_refund_reverses_its_share_once_and_a_full_one_the_rest(
    café: Gateway, kounta: SandboxHandle, runtime: Runtime
) -> None:
    await completed_and_earned(café, kounta)
    part = Decimal("12.50")
    refund(kounta, JOHN_ORDER, part, deliveries=5)
    assert await balance(café) == EARNED - share(part)
    await reconcile(runtime)  # the poll finds the same refund: nothing more
    assert await balance(café) == EARNED - share(part)
    refund(kounta, JOHN_ORDER, TOTAL - part, deliveries=2)
    assert await balance(café) == Decimal(0)  # in all, never more than was earned
    await reconcile(runtime)
    till(kounta, JOHN_ORDER, "complete", deliveries=3)  # a late redelivery of the completion
    assert await balance(café) == Decimal(0)
    assert await history(café) == [
        ("EARNED", EARNED, f"Earned at Harbour Café, order {JOHN_ORDER}"),
        ("REVERSED", -share(part), f"Refunded: order {JOHN_ORDER}, 12.50 of 37.95"),
        ("REVERSED", share(part) - EARNED, f"Refunded: order {JOHN_ORDER}, 37.95 of 37.95"),
    ]


@pytest.mark.parametrize("act", ["reject", "delete"])
async def test_a_rejected_or_deleted_order_gives_back_all_it_earned_once(
    café: Gateway, kounta: SandboxHandle, runtime: Runtime, act: str
) -> None:
    await completed_and_earned(café, kounta)
    refund(kounta, JOHN_ORDER, Decimal("10"))
    assert till(kounta, JOHN_ORDER, act, deliveries=5) == [200] * 5
    assert await balance(café) == Decimal(0)
    await reconcile(runtime)
    assert await balance(café) == Decimal(0)
    kinds = [(kind, points) for kind, points, _ in await history(café)]
    assert kinds == [("EARNED", EARNED), ("REVERSED", -share(Decimal(10))),
                     ("REVERSED", share(Decimal(10)) - EARNED)]  # fmt: skip
    what = "deleted" if act == "delete" else "rejected"
    assert (await history(café))[-1][2] == (
        f"Order {JOHN_ORDER} was {what}: the points it earned taken back"
    )


async def test_points_already_spent_are_reversed_to_zero_and_the_shortfall_told(
    café: Gateway, kounta: SandboxHandle
) -> None:
    await completed_and_earned(café, kounta)
    await give(café, "-2.30", "spent at the counter")
    refund(kounta, JOHN_ORDER, TOTAL, deliveries=3)
    assert await balance(café) == Decimal(0)  # never below zero
    kind, points, reason = (await history(café))[-1]
    assert (kind, points) == ("REVERSED", Decimal("-1.00"))
    assert reason == (
        f"Refunded: order {JOHN_ORDER}, 37.95 of 37.95 (2.30 already spent, so 1.00 taken back)"
    )
    till(kounta, JOHN_ORDER, "reject", deliveries=2)  # gone: still nothing more to take
    assert await balance(café) == Decimal(0)
    assert len(await history(café)) == 2


@pytest.mark.parametrize("act", ["reject", "delete"])
@pytest.mark.parametrize("policy", [VoidPolicy.RETURN, VoidPolicy.KEEP])
async def test_points_redeemed_on_an_order_that_is_gone_follow_the_merchants_policy(
    café: Gateway, kounta: SandboxHandle, runtime: Runtime, act: str, policy: VoidPolicy
) -> None:
    async with runtime.db.transaction() as session:
        await set_void_policy(session, café.merchant.id, policy)
    await give(café, "100")
    pos = KountaPos(café)
    member = (await pos.lookup(JOHN_KOUNTA, JOHN_KOUNTA)).json()
    assert await pos.redeem(reward_url(member, "free-coffee"), JOHN_ORDER) == {"success": True}
    assert await balance(café) == Decimal(60)
    assert till(kounta, JOHN_ORDER, act, deliveries=4) == [200] * 4
    await reconcile(runtime)
    expected = Decimal(100) if policy is VoidPolicy.RETURN else Decimal(60)
    assert await balance(café) == expected
    told = await history(café)
    if policy is VoidPolicy.RETURN:
        what = "deleted" if act == "delete" else "rejected"
        assert told[-1] == ("RETURNED", Decimal(40), f"Given back: order {JOHN_ORDER} was {what}")
    else:
        assert told[-1][0] == "REDEEMED"


async def test_the_policy_is_set_from_the_merchant_and_shown(
    café: Gateway, runtime: Runtime
) -> None:
    data = await café.data("{ merchant { redeemedPointsOnVoid } }")
    assert data == {"merchant": {"redeemedPointsOnVoid": "RETURN"}}
    async with runtime.db.transaction() as session:
        await set_void_policy(session, café.merchant.id, VoidPolicy.KEEP)
    app = create_app(runtime=runtime)  # a process that has not read the merchant yet
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://gw") as client:  # fmt: skip
        answer = await client.post("/graphql", json={"query": "{ merchant { redeemedPointsOnVoid } }"},
                                   headers={"Authorization": f"Bearer {café.key}"})  # fmt: skip
    assert answer.json() == {"data": {"merchant": {"redeemedPointsOnVoid": "KEEP"}}}


async def test_with_every_webhook_lost_the_worker_applies_each_change_once(
    café: Gateway, kounta: SandboxHandle, runtime: Runtime
) -> None:
    """Done when: completions, refunds, rejects and deletes with deliveries 0 are applied by
    `gateway worker --once` exactly once; a late webhook then changes nothing."""
    await completed_and_earned(café, kounta, deliveries=0)
    assert await balance(café) == Decimal(0)
    await reconcile(runtime)
    assert await balance(café) == EARNED
    till(kounta, JOHN_ORDER, "refund", 0, method_id=CASH, amount=Decimal("-12.50"))
    await reconcile(runtime)
    await reconcile(runtime)
    assert await balance(café) == EARNED - share(Decimal("12.50"))
    till(kounta, JOHN_ORDER, "delete", 0)
    await reconcile(runtime)
    assert await balance(café) == Decimal(0)
    assert [kind for kind, _, _ in await history(café)] == ["EARNED", "REVERSED", "REVERSED"]


async def test_the_poll_finds_a_completion_and_a_late_webhook_changes_nothing(
    café: Gateway, kounta: SandboxHandle, runtime: Runtime
) -> None:
    await completed_and_earned(café, kounta, deliveries=0)
    await reconcile(runtime)
    assert till(kounta, JOHN_ORDER, "complete", deliveries=2) == [200] * 4
    assert await balance(café) == EARNED
    assert len(await history(café)) == 1


async def test_an_xseries_balance_is_reversed_the_same_way(
    runtime: Runtime, live: ServerThread, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    """Under the XSERIES points source the reversal is a loyalty adjustment at X-Series."""
    gw = await make_kounta_gateway(runtime, kounta, "Stark Industries", xseries=xseries)
    try:
        start = xseries_balance(xseries, JOHN_SMITH)
        pay_cash(kounta, JOHN_ORDER, TOTAL)
        till(kounta, JOHN_ORDER, "complete", deliveries=2)
        assert xseries_balance(xseries, JOHN_SMITH) == start + EARNED
        refund(kounta, JOHN_ORDER, Decimal("12.50"), deliveries=3)
        await reconcile(runtime)
        assert xseries_balance(xseries, JOHN_SMITH) == start + EARNED - share(Decimal("12.50"))
        assert kounta_order(kounta, JOHN_ORDER)["status"] == "COMPLETE"
    finally:
        await gw.client.aclose()


async def reconcile_refused_again(runtime: Runtime) -> None:
    report = await recover_once(Services(runtime), reconcile=True)
    assert any(done.failed for done in report.reconciled)


async def test_a_change_refused_for_now_keeps_the_checkpoint_until_it_applies(
    runtime: Runtime, live: ServerThread, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    """Nothing is dropped: while the X-Series token may not write loyalty, the lost
    completion is refused (once: the refusal is remembered, never asked again) and the
    checkpoint waits for it; once the store is reconnected with the permission, the worker
    credits it, once."""
    gw = await make_kounta_gateway(runtime, kounta, "Stark Industries", xseries=xseries)
    try:
        start = xseries_balance(xseries, JOHN_SMITH)
        pay_cash(kounta, JOHN_ORDER, TOTAL)
        till(kounta, JOHN_ORDER, "complete", deliveries=0)
        xseries.scopes(NO_LOYALTY_WRITE)
        report = await recover_once(Services(runtime), reconcile=True)
        kounta_pass = next(p for p in report.reconciled if p.pos.value == "KOUNTA")
        assert kounta_pass.failed and f"order {JOHN_ORDER}" in kounta_pass.failed[0]
        async with runtime.db.read() as session:
            assert await checkpoints.get(session, gw.merchant.id, Pos.KOUNTA) is None
        await reconcile_refused_again(runtime)  # remembered: X-Series is not asked again
        assert xseries.count("POST /api/2026-07/loyalty/adjustments/bulk") == 1
        xseries.scopes(" ".join(SCOPES))
        assert await connect.repaired(Services(runtime), gw.merchant.id) == 1  # reconnected
        await reconcile(runtime)
        await reconcile(runtime)
        assert xseries_balance(xseries, JOHN_SMITH) == start + EARNED
        async with runtime.db.read() as session:
            assert await checkpoints.get(session, gw.merchant.id, Pos.KOUNTA) is not None
    finally:
        await gw.client.aclose()
