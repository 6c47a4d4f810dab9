"""A property of the history: whatever staff do with adjustPoints (credits, debits the
balance cannot cover, the same key sent again, a key reused for other input), the points
the history tells add up to what the balance of record moved by, each movement once, and
no balance goes below zero. On both balances of record, over HTTP."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from gateway.domain.ids import Kind
from gateway.domain.merchant import Pos
from gateway.settings import Settings
from gateway.store import ledger
from tests.api.test_kounta_adapters import JOHN_KOUNTA
from tests.conftest import KOUNTA_STATIC_TOKEN, XSERIES_TOKEN, fresh_runtime
from tests.demo_ids import TONY
from tests.gateways import Gateway, make_gateway, make_kounta_gateway
from tests.services.test_adjust_points import adjust, xseries_balance
from tests.support import SandboxHandle, ServerThread

PAGE = """
query($id: ID!, $after: String) {
  customer(id: $id) {
    activity(first: 3, after: $after) {
      totalCount
      edges { node { id points balanceAfter } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

POINTS = st.decimals(min_value=-60, max_value=60, places=2).filter(lambda d: d != 0)
STEPS = st.lists(st.tuples(POINTS, st.sampled_from(["new", "new", "new", "again", "reused"])),
                 min_size=1, max_size=10)  # fmt: skip
EXAMPLE = itertools.count()


async def whole_history(gw: Gateway, customer: str) -> list[dict[str, Any]]:
    """Every movement, page by page."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        data = await gw.data(PAGE, {"id": customer, "after": after})
        connection = data["customer"]["activity"]
        found += [edge["node"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            assert connection["totalCount"] == len(found)
            return found
        after = connection["pageInfo"]["endCursor"]


async def scenario(
    base: Settings,
    folder: Path,
    source: str,
    steps: list[tuple[Decimal, str]],
    xseries: SandboxHandle,
    kounta: SandboxHandle,
) -> None:
    if base.database_url.startswith("sqlite"):  # each example on a store of its own
        url = f"sqlite+aiosqlite:///{folder / f'example-{next(EXAMPLE)}.db'}"
        base = base.model_copy(update={"database_url": url})
    runtime = await fresh_runtime(base)
    xseries.reset()
    kounta.reset()
    if source == "xseries":
        gw = await make_gateway(runtime, xseries, "Stark")
        customer, start = gw.id(Kind.CUSTOMER, TONY), Decimal(50)
    else:
        gw = await make_kounta_gateway(runtime, kounta, "Café")
        customer, start = gw.id(Kind.CUSTOMER, JOHN_KOUNTA, Pos.KOUNTA), Decimal(0)
    try:
        balance, applied = start, 0
        sent: list[tuple[str, Decimal, dict[str, Any]]] = []  # key, points, first answer
        for n, (points, how) in enumerate(steps):
            if how == "again" and sent:
                key, repeated, first = sent[-1]
                assert await adjust(gw, customer, str(repeated), "why", key=key) == first
                continue
            if how == "reused" and sent:
                key, repeated, _ = sent[-1]
                other = await adjust(gw, customer, str(repeated + 1), "why", key=key)
                assert other["code"] == "IDEMPOTENCY_KEY_REUSED"
                continue
            answer = await adjust(gw, customer, str(points), "why", key=f"k{n}")
            sent.append((f"k{n}", points, answer))
            if balance + points < 0:
                assert answer["code"] == "INSUFFICIENT_BALANCE"
                continue
            balance += points
            applied += 1
            assert answer["balanceAfter"] == f"{balance:.2f}"
        movements = await whole_history(gw, customer)
        assert len(movements) == applied
        assert len({m["id"] for m in movements}) == applied  # each once, across pages
        assert sum(Decimal(m["points"]) for m in movements) == balance - start
        assert all(Decimal(m["balanceAfter"]) >= 0 for m in movements)
        if source == "xseries":
            assert xseries_balance(xseries, TONY) == balance
        else:
            async with runtime.db.read() as session:
                assert await ledger.balance(session, gw.merchant.id, JOHN_KOUNTA) == balance
    finally:
        await gw.client.aclose()
        await runtime.aclose()


@hypothesis.settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(source=st.sampled_from(["ledger", "xseries"]), steps=STEPS)
def test_the_history_adds_up_to_what_the_balance_moved_by(
    settings: Settings,  # read only: each example gets a store of its own
    tmp_path_factory: pytest.TempPathFactory,
    xseries_server: ServerThread,
    kounta_server: ServerThread,
    source: str,
    steps: list[tuple[Decimal, str]],
) -> None:
    folder = tmp_path_factory.mktemp("history")
    xseries = SandboxHandle(xseries_server.url, XSERIES_TOKEN)
    kounta = SandboxHandle(kounta_server.url, KOUNTA_STATIC_TOKEN)
    try:
        asyncio.run(scenario(settings, folder, source, steps, xseries, kounta))
    finally:
        xseries.close()
        kounta.close()
