"""Issue 10, "Done when": a Hypothesis stateful test. Any sequence of the till's acts on
Kounta orders (completions, redemptions, partial and full refunds, rejects, deletes), with
points spent and given at the counter in between and the webhooks delivered, duplicated, all
at once, lost or late in any order, ends after reconciliation with the balance the final POS
state implies, never below zero, and a history that adds up to what the balance moved by.

Each run is a Kounta-only café (the gateway's ledger keeps the balance) on a store of its
own, with a real gateway server receiving the sandbox's webhooks. A model follows along: the
POS's orders, and what the gateway has done about each (docs/architecture.md, "The life of a
sale"). Whenever the gateway looks at an order (a webhook, or the worker's reconciliation) it
brings the order's points to what its state says: earned once when complete; what was
redeemed on it given back once it is gone (by the merchant's policy); then what it earned
taken back up to the order's cumulative target, from a balance that never goes below zero
(what is short stays short, and is told in the history). So the model's balance is exact
after every step, and after a reconciliation it is what the POS state implies plus the
shortfalls. Reconciliation follows Kounta's lists as the worker reads them: live orders, then
deleted ones, each newest first (the order matters only to how a shortfall falls).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import hypothesis
import pytest
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from gateway import jsonx
from gateway.app import create_app
from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos, VoidPolicy
from gateway.services.context import Services
from gateway.services.recovery import recover_once
from gateway.settings import Settings
from gateway.store import activity, ledger
from gateway.store.merchants import set_void_policy
from gateway.store.models import TakeBackRow
from tests.api.test_kounta_adapters import JOHN_KOUNTA
from tests.conftest import KOUNTA_STATIC_TOKEN, fresh_runtime
from tests.gateways import (
    KOUNTA_COMPANY,
    LOYALTY_METHOD,
    Gateway,
    KountaPos,
    make_kounta_gateway,
    reward_url,
)
from tests.services.test_adjust_points import adjust
from tests.support import SandboxHandle, ServerThread, free_port

T = TypeVar("T")

CASH = 1
RATIO = Decimal("0.1")  # a ledger merchant's default earning ratio
COFFEE = "free-coffee"  # a PAYMENT reward: 40 points pay 4.60 (tests/gateways.py)
COFFEE_POINTS, COFFEE_VALUE = Decimal(40), Decimal("4.60")
CENT = Decimal("0.01")
ZERO = Decimal(0)
Product = tuple[int, Decimal, Decimal]  # id, unit price, unit tax
LATTE: Product = (7302, Decimal("4.00"), Decimal("0.60"))
SANDWICH: Product = (5312, Decimal("9.00"), Decimal("1.35"))
Basket = tuple[tuple[Product, int], ...]
# What an order may hold: a latte alone costs exactly one coffee reward (it then earns 0).
BASKETS: tuple[Basket, ...] = (
    ((LATTE, 1),),
    ((LATTE, 6), (SANDWICH, 1)),
    ((SANDWICH, 2),),
    ((LATTE, 3),),
)
MAX_ORDERS = 6


def any_order(order: Order) -> bool:
    return True


def is_open(order: Order) -> bool:
    return order.open


def not_gone(order: Order) -> bool:
    return not order.gone


def live(order: Order) -> bool:
    return not order.deleted


def refundable(order: Order) -> bool:
    return order.status == "COMPLETE" and not order.deleted and order.paid > order.refunded


EXAMPLE = itertools.count()


def cents(value: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    return value.quantize(CENT, rounding=rounding)


# --------------------------------------------------------------------------- the model


@dataclass
class Order:
    """One order: as the POS has it, and what the gateway has done about it."""

    id: str
    basket: Basket
    status: str = "OPEN"  # OPEN, COMPLETE or REJECTED
    deleted: bool = False
    paid: Decimal = ZERO  # positive payments, the loyalty ones included
    loyalty_paid: Decimal = ZERO
    refunded: Decimal = ZERO  # in all, whatever the method
    loyalty_refunded: Decimal = ZERO
    redeemed: Decimal = ZERO  # points the gateway's redemptions took on it
    earned: Decimal | None = None  # None until the gateway saw it complete
    reversed_target: Decimal = ZERO  # the reversal target taken back (or found short)
    returned: bool = False

    @property
    def total(self) -> Decimal:
        return sum(((price + tax) * qty for (_, price, tax), qty in self.basket), ZERO)

    @property
    def owing(self) -> Decimal:
        return self.total - self.paid

    @property
    def open(self) -> bool:
        return self.status == "OPEN" and not self.deleted

    @property
    def gone(self) -> bool:
        return self.deleted or self.status == "REJECTED"

    def earning(self) -> Decimal:
        """The loyalty rules (docs/architecture.md, "Loyalty rules"): per unit, price x ratio,
        scaled by the part not paid with loyalty, half-up to the cent."""
        factor = max(ZERO, self.total - self.loyalty_paid) / self.total
        return sum((cents(price * RATIO * factor) * qty for (_, price, _), qty in self.basket),
                   ZERO)  # fmt: skip

    def reversal_target(self, earned: Decimal) -> Decimal:
        """All of it when gone or refunded in full; else the refund's share, half-up."""
        if earned <= 0:
            return ZERO
        if self.gone or self.refunded >= self.total:
            return earned
        return min(earned, cents(earned * self.refunded / self.total))


@dataclass
class Model:
    policy: VoidPolicy
    opening: Decimal
    balance: Decimal
    orders: dict[str, Order] = field(default_factory=dict)
    adjusted: Decimal = ZERO  # given (+) and spent (-) at the counter
    shortfall: Decimal = ZERO
    movements: int = 0  # the rows the history should hold

    def observe(self, order: Order) -> None:
        """The gateway looks at the order (services/kounta_orders.py, ``_settle``)."""
        if order.open:
            return
        if order.status == "COMPLETE" and not order.deleted and order.earned is None:
            order.earned = order.earning()
            if order.earned > 0:
                self.move(order.earned)
        if order.gone and self.policy is VoidPolicy.RETURN and not order.returned:
            order.returned = True
            if order.redeemed > 0:
                self.move(order.redeemed)
        if order.earned:
            target = order.reversal_target(order.earned)
            wanted = target - order.reversed_target
            if wanted > 0:
                taken = min(wanted, self.balance)
                self.shortfall += wanted - taken
                order.reversed_target = target
                self.move(-taken)  # told even when nothing was left to take

    def reconcile(self) -> None:
        """The worker's pass: Kounta's live orders, then its deleted ones, newest first."""
        newest_first = sorted(self.orders.values(), key=lambda o: int(o.id), reverse=True)
        for deleted in (False, True):
            for order in newest_first:
                if order.deleted is deleted:
                    self.observe(order)

    def move(self, points: Decimal) -> None:
        self.balance += points
        self.movements += 1

    def implied(self) -> Decimal:
        """The balance the POS's orders imply, whatever the gateway saw when, before
        shortfalls: a completed order keeps what it earned less its refunds' share; what
        was redeemed on an order that is gone comes back under RETURN."""
        balance = self.opening + self.adjusted
        for order in self.orders.values():
            balance -= order.redeemed
            if order.gone:
                balance += order.redeemed if self.policy is VoidPolicy.RETURN else ZERO
            elif order.status == "COMPLETE":
                earned = order.earning()
                balance += earned - order.reversal_target(earned)
        return balance


# --------------------------------------------------------------------------- the till


@dataclass
class Café:
    """The till, the register and the counter, acting on the sandbox and the gateway, and
    telling the model what they did."""

    gw: Gateway
    kounta: SandboxHandle
    server: ServerThread
    model: Model
    authorization: str  # what the gateway registered with Kounta's webhooks
    hooks: httpx.Client  # to the gateway server, as Kounta's webhooks come
    payloads: list[tuple[str, bytes]] = field(default_factory=list)  # every webhook body
    offers: list[str] = field(default_factory=list)  # redeem URLs shown, not used yet

    def api(self, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.kounta.token}",
                   "Content-Type": "application/json"}  # fmt: skip
        url = f"/v1/companies/{KOUNTA_COMPANY}{path}"
        return self.kounta._http.post(url, content=jsonx.dumps(body), headers=headers)

    def new_order(self, basket: Basket) -> Order:
        lines = [{"product_id": product, "quantity": qty, "unit_price": price, "unit_tax": tax}
                 for (product, price, tax), qty in basket]  # fmt: skip
        body = {"status": "ON_HOLD", "customer_id": int(JOHN_KOUNTA), "lines": lines}
        response = self.api("/orders", body)
        assert response.status_code == 201, response.text
        order_id = str(response.json()["id"])
        order = self.model.orders[order_id] = Order(order_id, basket)
        return order

    def pay_cash(self, order: Order, amount: Decimal) -> None:
        response = self.api(f"/orders/{order.id}/payments", {"method_id": CASH, "amount": amount})
        assert response.status_code == 201, response.text
        order.paid += amount

    def till(self, order: Order, act: str, deliveries: int, concurrent: bool,
             **body: Any) -> None:  # fmt: skip
        """The till acts; each webhook it sends reaches the gateway, which answers 200
        once it has brought the order's points to what its state says."""
        options = {"deliveries": deliveries, "concurrent": concurrent, **body}
        response = self.kounta._http.post(f"/_sandbox/orders/{order.id}/{act}",
                                          content=jsonx.dumps(options),
                                          headers={"Content-Type": "application/json"})  # fmt: skip
        assert response.status_code == 200, response.text
        answer = jsonx.loads(response.content)
        topics = 2 if act == "complete" else 1  # orders/completed, then orders/updated
        statuses = [delivery["status"] for delivery in answer["deliveries"]]
        assert statuses == [200] * deliveries * topics, answer["deliveries"]
        self.payloads.append((order.id, jsonx.dumps(answer["order"])))
        if deliveries:
            self.model.observe(order)

    async def redeem(self, order: Order, *, stale: bool, again: bool) -> None:
        """The register shows the member's rewards and redeems a coffee on the order through
        the gateway's redeem URL: the one just shown, or one shown earlier (``stale``), when
        the balance may have been higher."""
        pos = KountaPos(self.gw)
        member = (await pos.lookup(JOHN_KOUNTA, JOHN_KOUNTA)).json()
        offered = [r for r in member["rewards"] if r["id"] == COFFEE]
        assert bool(offered) is (self.model.balance >= COFFEE_POINTS)
        if offered:
            self.offers.append(reward_url(member, COFFEE))
        if not self.offers:
            return
        url = self.offers.pop(0 if stale else -1)
        expected = order.open and order.owing >= COFFEE_VALUE
        expected = expected and self.model.balance >= COFFEE_POINTS
        answer = await pos.redeem(url, order.id)
        assert answer["success"] is expected, (answer, order, self.model.balance)
        if again:  # the register calls the same URL again: once is once
            assert (await pos.redeem(url, order.id))["success"] is expected
        if expected:
            order.paid += COFFEE_VALUE
            order.loyalty_paid += COFFEE_VALUE
            order.redeemed += COFFEE_POINTS
            self.model.move(-COFFEE_POINTS)

    async def adjust(self, points: Decimal, key: str) -> None:
        """Staff give or take points at the counter (adjustPoints, told in the history)."""
        customer = self.gw.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA)
        answer = await adjust(self.gw, customer, str(points), "At the counter", key=key)
        if self.model.balance + points >= 0:
            assert answer["__typename"] == "AdjustPointsSuccess", answer
            self.model.adjusted += points
            self.model.move(points)
        else:
            assert answer["code"] == "INSUFFICIENT_BALANCE", answer

    def late(self, n: int) -> None:
        """A webhook sent earlier arrives (again), after whatever happened since."""
        order_id, body = self.payloads[n % len(self.payloads)]
        headers = {"Authorization": self.authorization, "Content-Type": "application/json"}
        response = self.hooks.post("/webhooks/kounta", content=body, headers=headers)
        assert response.status_code == 200, response.text
        self.model.observe(self.model.orders[order_id])

    async def reconcile(self) -> None:
        report = await recover_once(Services(self.gw.runtime), reconcile=True)
        assert report.still_failing == []
        assert all(not done.failed for done in report.reconciled), report.reconciled
        self.model.reconcile()

    async def balance(self) -> Decimal:
        async with self.gw.runtime.db.read() as session:
            return await ledger.balance(session, self.gw.merchant.id, JOHN_KOUNTA)

    async def settled(self) -> None:
        """After reconciliation: the balance the POS state implies (plus what was already
        spent when it was to be taken back), never below zero, and a history that tells
        each movement once and adds up to what the balance moved by."""
        await self.reconcile()
        model, gw = self.model, self.gw
        balance = await self.balance()
        assert balance == model.balance == model.implied() + model.shortfall
        assert balance >= 0
        async with gw.runtime.db.read() as session:
            told = await activity.total(session, gw.merchant.id, JOHN_KOUNTA)
            rows = await activity.count(session, gw.merchant.id, JOHN_KOUNTA)
            page, _ = await activity.page(session, gw.merchant.id, JOHN_KOUNTA, first=100)
            short = await session.scalar(
                select(func.coalesce(func.sum(TakeBackRow.shortfall), 0)).where(
                    TakeBackRow.merchant_id == gw.merchant.id
                )
            )
        assert told == balance - model.opening
        assert rows == model.movements
        assert all(row.balance_after is None or row.balance_after >= 0 for row in page)
        assert Decimal(short or 0) == model.shortfall

    async def changes_nothing_more(self) -> None:
        """Every webhook ever sent, delivered once more, then the worker again: nothing."""
        before = await self.balance()
        async with self.gw.runtime.db.read() as session:
            rows = await activity.count(session, self.gw.merchant.id, JOHN_KOUNTA)
        for n in range(len(self.payloads)):
            self.late(n)
        await self.reconcile()
        assert await self.balance() == before == self.model.balance
        async with self.gw.runtime.db.read() as session:
            assert await activity.count(session, self.gw.merchant.id, JOHN_KOUNTA) == rows


# --------------------------------------------------------------------------- the machine

WHICH = st.integers(0, 30)  # which order (among those an act applies to), or which payload
DELIVERIES = st.integers(0, 3)  # 0: the webhook is lost
PERCENT = st.integers(1, 100)  # of what is left to refund


class Afterlife(RuleBasedStateMachine):
    def __init__(self, base: Settings, folder: Path, kounta: SandboxHandle) -> None:
        super().__init__()
        self.base, self.folder, self.kounta = base, folder, kounta
        self.loop = asyncio.new_event_loop()
        self.café: Café | None = None
        self.steps = itertools.count()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    @property
    def model(self) -> Model:
        assert self.café is not None
        return self.café.model

    @initialize(policy=st.sampled_from(VoidPolicy), opening=st.sampled_from([0, 45, 120]))
    def open_the_café(self, policy: VoidPolicy, opening: int) -> None:
        self.café = self.run(self._open(policy, Decimal(opening)))

    async def _open(self, policy: VoidPolicy, opening: Decimal) -> Café:
        port = free_port()
        update: dict[str, Any] = {"public_url": f"http://127.0.0.1:{port}"}
        if self.base.database_url.startswith("sqlite"):  # each run on a store of its own
            update["database_url"] = f"sqlite+aiosqlite:///{self.folder / f'{next(EXAMPLE)}.db'}"
        settings = self.base.model_copy(update=update)
        runtime = await fresh_runtime(settings)
        self.kounta.reset()
        gw = await make_kounta_gateway(runtime, self.kounta, "Harbour Café")
        async with runtime.db.transaction() as session:
            await set_void_policy(session, gw.merchant.id, policy)
            if opening:  # from before the history: not told in it
                await ledger.append(session, gw.merchant.id, JOHN_KOUNTA, opening, "opening",
                                    "opening balance")  # fmt: skip
        # Started once the merchant's webhooks are registered: its own check finds them right.
        server = ServerThread(create_app(settings), port=port, lifespan=True).start()
        [authorization] = {hook["headers"]["Authorization"]
                           for hook in self.kounta.get(f"/v1/companies/{KOUNTA_COMPANY}/webhooks")}  # fmt: skip
        hooks = httpx.Client(base_url=server.url, timeout=10)
        model = Model(policy, opening, opening)
        café = Café(gw, self.kounta, server, model, authorization, hooks)
        café.new_order(BASKETS[1])
        return café

    def orders(self, where: Callable[[Order], bool]) -> list[Order]:
        if self.café is None:
            return []
        return [o for o in sorted(self.model.orders.values(), key=lambda o: int(o.id))
                if where(o)]  # fmt: skip

    def pick(self, which: int, where: Callable[[Order], bool]) -> Order:
        candidates = self.orders(where)
        return candidates[which % len(candidates)]

    # -- the register and the till --

    @precondition(lambda self: len(self.model.orders) < MAX_ORDERS)
    @rule(basket=st.sampled_from(BASKETS), coffees=st.integers(0, 2))
    def new_order(self, basket: Basket, coffees: int) -> None:
        """Rung up, with a coffee or two redeemed on it at once (if the balance allows)."""
        assert self.café is not None
        order = self.café.new_order(basket)
        for _ in range(coffees):
            self.run(self.café.redeem(order, stale=False, again=False))

    @precondition(lambda self: bool(self.orders(is_open)))
    @rule(which=WHICH, stale=st.booleans(), again=st.booleans(), anywhere=st.booleans())
    def redeem(self, which: int, stale: bool, again: bool, anywhere: bool) -> None:
        """On an open order; sometimes on any (which must refuse it if it is not open)."""
        assert self.café is not None
        order = self.pick(which, any_order if anywhere else is_open)
        self.run(self.café.redeem(order, stale=stale, again=again))

    @precondition(lambda self: bool(self.orders(not_gone)))
    @rule(which=WHICH, deliveries=DELIVERIES, concurrent=st.booleans())
    def complete(self, which: int, deliveries: int, concurrent: bool) -> None:
        """Paid in cash and completed; a completed order again only sends its webhooks."""
        assert self.café is not None
        order = self.pick(which, not_gone)
        if order.owing > 0:
            self.café.pay_cash(order, order.owing)
        order.status = "COMPLETE"
        self.café.till(order, "complete", deliveries, concurrent)

    @precondition(lambda self: bool(self.orders(refundable)))
    @rule(which=WHICH, percent=PERCENT, deliveries=DELIVERIES, concurrent=st.booleans(),
          to_loyalty=st.booleans())  # fmt: skip
    def refund(
        self, which: int, percent: int, deliveries: int, concurrent: bool, to_loyalty: bool
    ) -> None:
        """A part of what is left to refund, or (100 %) all of it; in cash, or back to the
        loyalty payment method as far as the order was paid with it."""
        assert self.café is not None
        order = self.pick(which, refundable)
        left = order.paid - order.refunded
        amount = max(CENT, cents(left * percent / 100, ROUND_DOWN))
        method = CASH
        if to_loyalty and order.loyalty_paid > order.loyalty_refunded:
            method = int(LOYALTY_METHOD)
            amount = min(amount, order.loyalty_paid - order.loyalty_refunded)
            order.loyalty_refunded += amount
        order.refunded += amount
        self.café.till(order, "refund", deliveries, concurrent, method_id=method, amount=-amount)

    @precondition(lambda self: bool(self.orders(live)))
    @rule(which=WHICH, deliveries=DELIVERIES, concurrent=st.booleans())
    def reject(self, which: int, deliveries: int, concurrent: bool) -> None:
        """Open or completed; a rejected order again only sends its webhook."""
        assert self.café is not None
        order = self.pick(which, live)
        order.status = "REJECTED"
        self.café.till(order, "reject", deliveries, concurrent)

    @precondition(lambda self: bool(self.orders(live)))
    @rule(which=WHICH, deliveries=DELIVERIES, concurrent=st.booleans())
    def delete(self, which: int, deliveries: int, concurrent: bool) -> None:
        assert self.café is not None
        order = self.pick(which, live)
        order.deleted = True
        self.café.till(order, "delete", deliveries, concurrent)

    # -- the counter --

    @rule(leave=st.sampled_from([ZERO, Decimal("0.50"), Decimal(2), Decimal(10), None]))
    def spend(self, leave: Decimal | None) -> None:
        """Points taken off by hand, leaving ``leave`` (None: one more than there is)."""
        assert self.café is not None
        balance = self.model.balance
        wanted = balance + 1 if leave is None else balance - leave
        if wanted > 0:
            self.run(self.café.adjust(-wanted, key=f"adjust-{next(self.steps)}"))

    @rule(points=st.sampled_from([Decimal(10), Decimal(40), Decimal("45.50")]))
    def give(self, points: Decimal) -> None:
        assert self.café is not None
        self.run(self.café.adjust(points, key=f"adjust-{next(self.steps)}"))

    # -- the network and the worker --

    @precondition(lambda self: self.café is not None and bool(self.café.payloads))
    @rule(which=WHICH)
    def late_webhook(self, which: int) -> None:
        assert self.café is not None
        self.café.late(which)

    @rule()
    def reconcile(self) -> None:
        assert self.café is not None
        self.run(self.café.settled())

    @invariant()
    def the_balance_is_the_models(self) -> None:
        assert self.café is not None
        assert self.run(self.café.balance()) == self.model.balance

    def teardown(self) -> None:
        café = self.café
        try:
            # The run ends after reconciliation, unless a step already failed.
            if café is not None and sys.exc_info()[0] is None:
                self.run(café.settled())
                self.run(café.changes_nothing_more())
        finally:
            if café is not None:
                café.hooks.close()
                café.server.stop()
                self.run(café.gw.client.aclose())
                self.run(café.gw.runtime.aclose())
            self.loop.close()


def test_any_life_of_the_orders_ends_with_the_balance_their_final_state_implies(
    settings: Settings,  # read only: each run gets a store and a server of its own
    tmp_path_factory: pytest.TempPathFactory,
    kounta_server: ServerThread,
) -> None:
    folder = tmp_path_factory.mktemp("afterlife")
    kounta = SandboxHandle(kounta_server.url, KOUNTA_STATIC_TOKEN)

    class Run(Afterlife):
        def __init__(self) -> None:
            super().__init__(settings, folder, kounta)

    try:
        run_state_machine_as_test(
            Run,
            settings=hypothesis.settings(
                max_examples=20,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture],
            ),
        )
    finally:
        kounta.close()


# --------------------------------------------------------------------------- programs it found


def replay(
    settings: Settings,
    folder: Path,
    kounta_server: ServerThread,
    program: Callable[[Afterlife], None],
) -> None:
    """One run of the machine, step by step, as Hypothesis prints a failing one."""
    kounta = SandboxHandle(kounta_server.url, KOUNTA_STATIC_TOKEN)
    state = Afterlife(settings, folder, kounta)
    try:
        program(state)
    finally:
        state.teardown()
        kounta.close()


def test_an_order_earns_the_same_whether_first_seen_before_or_after_a_loyalty_refund(
    settings: Settings, tmp_path: Path, kounta_server: ServerThread
) -> None:
    """A coffee redeemed on an order, its completion's webhooks lost, then the points tender
    refunded (a negative payment of the loyalty method). The order earned on the part not
    paid with points when it completed, and the refund takes back its share of that; seen
    only after the refund, it must have earned the same (it earned as if paid in cash)."""

    def program(state: Afterlife) -> None:
        state.open_the_café(policy=VoidPolicy.RETURN, opening=120)
        state.redeem(which=0, stale=False, again=False, anywhere=False)
        state.complete(which=0, deliveries=0, concurrent=False)
        state.refund(which=0, percent=100, deliveries=1, concurrent=False, to_loyalty=True)
        state.the_balance_is_the_models()

    replay(settings, tmp_path, kounta_server, program)


def test_webhooks_at_once_for_a_deleted_order_give_its_redeemed_points_back_once(
    settings: Settings, tmp_path: Path, kounta_server: ServerThread
) -> None:
    """Two deliveries at once of the delete of an order a coffee was redeemed on: both give
    the points back under one key; on PostgreSQL the second used to fail on the ledger's
    unique key (a 500 to Kounta) instead of finding the movement made."""

    def program(state: Afterlife) -> None:
        state.open_the_café(policy=VoidPolicy.RETURN, opening=45)
        state.redeem(which=0, stale=False, again=False, anywhere=False)
        state.delete(which=0, deliveries=2, concurrent=True)
        state.the_balance_is_the_models()

    replay(settings, tmp_path, kounta_server, program)
