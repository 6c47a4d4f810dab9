"""``examples/client.py`` against a live gateway on the sandboxes (the demo's setup: a
merchant on both POS, points kept at X-Series), so the example cannot rot: it finds
Johnny Bravo, pays 5 of his on-account T-shirt with his points, and reads the payment in
his activity."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from examples import client as example
from gateway.domain.ids import Kind
from gateway.runtime import Runtime
from gateway.settings import Settings
from tests.api.test_kounta_adapters import xseries_balance
from tests.demo_ids import JOHNNY, JOHNNY_SALE
from tests.gateways import Gateway, make_kounta_gateway
from tests.support import SandboxHandle, ServerThread


@pytest.fixture
def settings(settings: Settings, public_port: int) -> Settings:
    return settings.model_copy(update={"public_url": f"http://127.0.0.1:{public_port}"})


@pytest.fixture
async def shop(
    runtime: Runtime, live: ServerThread, xseries: SandboxHandle, kounta: SandboxHandle
) -> AsyncIterator[Gateway]:
    gw = await make_kounta_gateway(runtime, kounta, "Stark Industries", xseries=xseries)
    yield gw
    await gw.client.aclose()


async def test_the_client_finds_pays_and_reads_the_activity(
    shop: Gateway, live: ServerThread, xseries: SandboxHandle
) -> None:
    def run() -> tuple[example.Customer, example.LoyaltyPayment, list[example.Activity]]:
        client = example.connect(f"{live.url}/graphql", shop.key)
        customer = example.find_customer(client, "Johnny Bravo")
        payment = example.pay_with_loyalty(
            client, customer.open_sales[0].id, Decimal(5), "example-test-1"
        )
        again = example.pay_with_loyalty(
            client, customer.open_sales[0].id, Decimal(5), "example-test-1"
        )
        assert again == payment  # the same key pays once
        return customer, payment, example.read_activity(client, customer.id)

    customer, payment, activity = await asyncio.to_thread(run)
    assert customer.id == shop.id(Kind.CUSTOMER, JOHNNY)
    assert customer.balance == Decimal(12)
    assert customer.open_sales == [example.OpenSale(shop.id(Kind.SALE, JOHNNY_SALE), Decimal(18))]
    assert payment == example.LoyaltyPayment(Decimal(5), Decimal(7), Decimal(13))
    assert xseries_balance(xseries, JOHNNY) == Decimal(7)
    assert activity[0].kind == "REDEEMED" and activity[0].points == Decimal(-5)


async def test_the_client_reports_a_refusal_by_its_code(shop: Gateway, live: ServerThread) -> None:
    def run() -> example.Refused:
        client = example.connect(f"{live.url}/graphql", shop.key)
        sale = example.find_customer(client, "Johnny Bravo").open_sales[0]
        with pytest.raises(example.Refused) as refused:
            example.pay_with_loyalty(client, sale.id, Decimal(13), "example-test-2")
        return refused.value

    refused = await asyncio.to_thread(run)
    assert refused.code == "INSUFFICIENT_BALANCE"  # 12 points for 13


async def test_the_command_prints_the_walkthrough(
    shop: Gateway, live: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--url", f"{live.url}/graphql", "--key", shop.key, "--amount", "2.50"]
    await asyncio.to_thread(example.main, argv)
    out = capsys.readouterr().out
    assert "Johnny Bravo: 12.00 points, 1 open sale(s)" in out
    assert "paid 2.50 with points: 9.50 left, 15.50 still due" in out
    assert "REDEEMED" in out


async def test_the_command_says_why_it_was_refused(
    shop: Gateway, live: ServerThread, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--url", f"{live.url}/graphql", "--key", shop.key, "--amount", "13"]
    with pytest.raises(SystemExit) as stopped:
        await asyncio.to_thread(example.main, argv)
    assert str(stopped.value).startswith("refused: INSUFFICIENT_BALANCE")
