"""The Kounta REST adapters driven the way Kounta's POS drives them (README, "Kounta")."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

from gateway.domain import offers
from gateway.runtime import Runtime
from gateway.services.rewards import offer_key
from tests.demo_ids import JOHN_SMITH, TONY
from tests.gateways import KOUNTA_COMPANY, LOYALTY_METHOD, Gateway, KountaPos, reward_url
from tests.support import SandboxHandle

JOHN_KOUNTA = "3842"
JOHN_ORDER = "93824701"  # ON_HOLD, 37.95 owing
LUCY_COMPLETE_ORDER = "93824703"


def xseries_balance(xseries: SandboxHandle, customer_id: str) -> Decimal:
    return Decimal(xseries.get("/api/customers", id=customer_id)["customers"][0]["loyalty_balance"])


def kounta_order(kounta: SandboxHandle, order_id: str) -> dict[str, Any]:
    order: dict[str, Any] = kounta.get(f"/v1/companies/{KOUNTA_COMPANY}/orders/{order_id}")
    return order


async def john(pos: KountaPos) -> dict[str, Any]:
    response = await pos.lookup(JOHN_KOUNTA, JOHN_SMITH)
    assert response.status_code == 200, response.text
    member: dict[str, Any] = response.json()
    return member


# --------------------------------------------------------------------------- search


async def test_search_returns_the_members_map(both: Gateway) -> None:
    response = await KountaPos(both).search("John Smith")
    assert response.status_code == 200
    members = response.json()["members"]
    assert list(members) == [JOHN_SMITH]
    member = members[JOHN_SMITH]
    assert member["id"] == JOHN_SMITH
    assert (member["first_name"], member["email_address"]) == ("John", "john@example.com")
    assert member["current_points"] == "120.00" and isinstance(member["current_points"], str)
    assert member["points_label"] == "Points"
    assert all("order_id=111" in reward["redeem_url"] for reward in member["rewards"])


async def test_search_by_email_and_no_match(both: Gateway) -> None:
    pos = KountaPos(both)
    by_email = (await pos.search("tony@stark.example")).json()["members"]
    assert list(by_email) == [TONY]
    assert (await pos.search("Nobody Atall")).json() == {"members": {}}


async def test_unknown_company_or_wrong_token_get_an_error_and_no_data(both: Gateway) -> None:
    stranger = await KountaPos(both).search("John Smith", company_id="9999")
    assert stranger.status_code == 404
    assert set(stranger.json()) == {"error"}
    forged = await KountaPos(both, token="not-the-token").search("John Smith")
    assert forged.status_code == 401
    assert set(forged.json()) == {"error"}
    assert "members" not in forged.text


# --------------------------------------------------------------------------- lookup and redeem


async def test_reward_lookup_returns_the_member_with_rewards(both: Gateway) -> None:
    member = await john(KountaPos(both))
    assert member["id"] == JOHN_SMITH and member["current_points"] == "120.00"
    rewards = {reward["id"]: reward for reward in member["rewards"]}
    assert set(rewards) == {"pay-with-points", "free-coffee", "ten-off"}
    coffee = rewards["free-coffee"]
    assert coffee["title"] == "Free coffee" and coffee["points_required"] == 40
    assert coffee["action_label"] == "Redeem" and coffee["variable_quantity"] is False
    pay = rewards["pay-with-points"]
    assert pay["variable_quantity"] is True and pay["points_required"] == 120
    assert all("order_id=111" in reward["redeem_url"] for reward in member["rewards"])


async def test_redeeming_debits_once_and_pays_the_order_once(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    order = kounta_order(kounta, JOHN_ORDER)
    assert len(order["payments"]) == 1
    payment = order["payments"][0]
    assert (Decimal(str(payment["amount"])), str(payment["method"]["id"])) == (
        Decimal("4.6"),
        LOYALTY_METHOD,
    )
    assert payment["ref"]  # the redemption id
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")

    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    assert await pos.redeem(url, JOHN_ORDER, post=True) == {"success": True}
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")
    assert kounta.count("POST /v1/companies/{company_id}/orders/{order_id}/payments") == 1


async def test_variable_reward_debits_the_quantity(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "pay-with-points")
    assert await pos.redeem(url, JOHN_ORDER, quantity="15") == {"success": True}
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("105")
    payments = kounta_order(kounta, JOHN_ORDER)["payments"]
    assert [Decimal(str(p["amount"])) for p in payments] == [Decimal("15")]


async def test_more_than_the_balance_is_refused_and_changes_nothing(
    both: Gateway, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "pay-with-points")
    answer = await pos.redeem(url, JOHN_ORDER, quantity="121")
    assert answer["success"] is False and answer["error"]
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")
    assert kounta_order(kounta, JOHN_ORDER)["payments"] == []
    assert xseries.count("POST /api/2026-07/loyalty/adjustments/bulk") == 0


async def test_more_than_is_owing_is_refused(both: Gateway, xseries: SandboxHandle) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "pay-with-points")
    answer = await pos.redeem(url, JOHN_ORDER, quantity="40")  # 37.95 owing
    assert answer["success"] is False and "due" in answer["error"]
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")


async def test_tampered_forged_or_expired_offers_are_refused(
    both: Gateway, runtime: Runtime, xseries: SandboxHandle
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    offer = url.split("/kounta/redeem/")[1].split("?")[0]
    payload, signature = offer.split(".")
    tampered = url.replace(
        offer, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    )
    assert (await pos.redeem(tampered, JOHN_ORDER))["success"] is False
    unsigned = url.replace(offer, payload + ".")
    assert (await pos.redeem(unsigned, JOHN_ORDER))["success"] is False
    expired = offers.mint(
        offer_key(runtime), both.merchant.id, JOHN_SMITH, "free-coffee", int(time.time()) - 1
    )
    answer = await pos.redeem(url.replace(offer, expired), JOHN_ORDER)
    assert answer == {
        "success": False,
        "error": "this reward offer has expired; look the customer up again",
    }
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")


async def test_an_offer_for_another_order_is_not_a_second_redemption(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    again = await pos.redeem(url, "93824702")
    assert again["success"] is False
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")


async def test_percent_discount_sets_price_variation_on_every_line(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "ten-off")
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    order = kounta_order(kounta, JOHN_ORDER)
    assert [Decimal(str(line["price_variation"])) for line in order["lines"]] == [
        Decimal("0.9")
    ] * 2
    assert Decimal(str(order["total"])) == Decimal("34.16")  # 37.95 less 10%, rounded per line
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("20")
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    again = kounta_order(kounta, JOHN_ORDER)
    assert [Decimal(str(line["price_variation"])) for line in again["lines"]] == [
        Decimal("0.9")
    ] * 2


async def test_a_complete_order_takes_no_reward(both: Gateway, xseries: SandboxHandle) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    answer = await pos.redeem(url, LUCY_COMPLETE_ORDER)
    assert answer["success"] is False and "complete" in answer["error"]
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")


async def test_an_order_that_cannot_take_it_gives_the_points_back(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    kounta.faults(status=404, fail_next=1, method="POST", path="/v1/companies/5678/orders/")
    answer = await pos.redeem(url, JOHN_ORDER)
    assert answer["success"] is False
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")  # debited, then credited back
    assert xseries.count("POST /api/2026-07/loyalty/adjustments/bulk") == 2
    assert kounta_order(kounta, JOHN_ORDER)["payments"] == []
    assert await pos.redeem(url, JOHN_ORDER) == answer  # the same answer, nothing re-done


async def test_a_payment_whose_answer_was_lost_is_found_not_repeated(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle
) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    kounta.faults(
        status=503, fail_next=1, method="POST", path="/v1/companies/5678/orders/", after=True
    )
    lost = await pos.redeem(url, JOHN_ORDER)
    assert lost["success"] is False
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1  # it did land
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")


async def test_the_worker_gives_back_a_redemption_whose_payment_did_not_land(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle, runtime: Runtime
) -> None:
    from gateway.services.context import Services
    from gateway.services.recovery import recover_once

    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    kounta.faults(status=503, method="POST", path="/v1/companies/5678/orders/")
    pending = await pos.redeem(url, JOHN_ORDER)
    assert pending["success"] is False and "read back" in pending["error"]
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")  # debited, not yet applied
    report = await recover_once(Services(runtime))  # reads the order back: not there
    assert len(report.finished) == 1 and not report.still_failing
    assert kounta_order(kounta, JOHN_ORDER)["payments"] == []
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("120")  # given back
    again = await pos.redeem(url, JOHN_ORDER)
    assert again["success"] is False and "given back" in again["error"]
    assert (await recover_once(Services(runtime))).finished == []
    kounta.clear_faults()


async def test_the_worker_completes_a_redemption_whose_payment_landed(
    both: Gateway, kounta: SandboxHandle, xseries: SandboxHandle, runtime: Runtime
) -> None:
    from gateway.services.context import Services
    from gateway.services.recovery import recover_once

    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    kounta.faults(status=503, method="POST", path="/v1/companies/5678/orders/", after=True)
    assert (await pos.redeem(url, JOHN_ORDER))["success"] is False  # applied, answer lost
    kounta.clear_faults()
    report = await recover_once(Services(runtime))
    assert len(report.finished) == 1 and not report.still_failing
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1
    assert xseries_balance(xseries, JOHN_SMITH) == Decimal("80")
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    assert len(kounta_order(kounta, JOHN_ORDER)["payments"]) == 1


async def test_an_unlinked_kounta_customer_is_not_a_member(both: Gateway) -> None:
    response = await KountaPos(both).lookup("3843", "")  # Lucy: no reference_id
    assert response.status_code == 400
    assert "not linked" in response.json()["error"]


async def test_every_redeem_url_is_new_and_unguessable(both: Gateway) -> None:
    pos = KountaPos(both)
    first = reward_url(await john(pos), "free-coffee")
    second = reward_url(await john(pos), "free-coffee")
    assert first != second
    assert str(uuid.UUID(JOHN_SMITH)) in JOHN_SMITH  # member ids are X-Series ids


async def test_redeem_by_post_with_a_form_body(both: Gateway, kounta: SandboxHandle) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "pay-with-points").replace(
        "order_id=111", f"order_id={JOHN_ORDER}"
    )
    response = await both.client.post(url, data={"quantity": "2"})
    assert response.json() == {"success": True}
    assert [Decimal(str(p["amount"])) for p in kounta_order(kounta, JOHN_ORDER)["payments"]] == [2]
