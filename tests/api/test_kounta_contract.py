"""The Kounta URLs' published contract (``schema/kounta-adapters.openapi.json``) describes
what the adapters really send: every answer of the Kounta flows (search, lookup, redeem
and each refusal) has a documented status and validates against its schema."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from gateway.api.kounta_openapi import PATH, document
from gateway.domain import offers
from gateway.observability import redact_path
from gateway.runtime import Runtime
from gateway.services.rewards import offer_key
from tests.api.test_kounta_adapters import JOHN_ORDER, LUCY_COMPLETE_ORDER, john
from tests.demo_ids import JOHN_SMITH
from tests.gateways import Gateway, KountaPos, reward_url
from tests.support import SandboxHandle

ROOT = Path(__file__).resolve().parents[2]
SEARCH = "/kounta/{token}/customer-search"
LOOKUP = "/kounta/{token}/reward-lookup"
REDEEM = "/kounta/redeem/{offer}"


def conforms(response: httpx.Response, path: str, method: str = "get") -> Any:
    """The response's status is documented for the operation and its body validates
    against the documented schema; the body, for the test's own assertions."""
    published = json.loads((ROOT / "schema" / "kounta-adapters.openapi.json").read_text())
    operation = published["paths"][path][method]
    documented = operation["responses"]
    assert str(response.status_code) in documented, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
    body = response.json()
    validator = Draft202012Validator({**schema, "components": published["components"]})
    errors = [error.message for error in validator.iter_errors(body)]
    assert not errors, (errors, body)
    return body


def redeem_path(url: str, order_id: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[1].replace("order_id=111", f"order_id={order_id}")


async def test_the_contract_is_served_at_its_own_url(both: Gateway) -> None:
    response = await both.client.get(PATH)
    assert response.status_code == 200
    published = json.loads((ROOT / "schema" / "kounta-adapters.openapi.json").read_text())
    assert response.json() == published == document()
    assert published["openapi"].startswith("3.1")
    assert set(published["paths"]) == {SEARCH, LOOKUP, REDEEM}
    # Not mistaken for an add-on URL, so its path is logged as it is.
    assert redact_path(PATH) == PATH
    assert redact_path("/kounta/secret-token/reward-lookup") == "/kounta/***/reward-lookup"


async def test_search_answers_conform(both: Gateway) -> None:
    pos = KountaPos(both)
    found = conforms(await pos.search("John Smith"), SEARCH)
    assert list(found["members"]) == [JOHN_SMITH]
    assert conforms(await pos.search("Nobody Atall"), SEARCH) == {"members": {}}
    assert conforms(await pos.search(""), SEARCH) == {"members": {}}
    assert "error" in conforms(await pos.search("x" * 201), SEARCH)


async def test_lookup_answers_conform(both: Gateway) -> None:
    pos = KountaPos(both)
    member = conforms(await pos.lookup("3842", JOHN_SMITH), LOOKUP)
    assert member["id"] == JOHN_SMITH and member["rewards"]
    unlinked = await pos.lookup("3843", "")
    assert unlinked.status_code == 400 and "error" in conforms(unlinked, LOOKUP)
    neither = await pos.lookup("", "")
    assert neither.status_code == 400 and conforms(neither, LOOKUP)


async def test_the_refusals_of_both_add_on_urls_conform(
    both: Gateway, xseries: SandboxHandle
) -> None:
    pos = KountaPos(both)
    for path, call in ((SEARCH, pos.search("John")), (LOOKUP, pos.lookup("3842", JOHN_SMITH))):
        assert conforms(await call, path)
    forged = KountaPos(both, token="not-the-token")
    assert (await forged.search("John")).status_code == 401
    conforms(await forged.search("John"), SEARCH)
    conforms(await forged.lookup("3842", JOHN_SMITH), LOOKUP)
    stranger = await pos.search("John", company_id="9999")
    assert stranger.status_code == 404 and conforms(stranger, SEARCH)
    assert conforms(await pos.lookup("3842", JOHN_SMITH, company_id="9999"), LOOKUP)
    bad_id = await pos.lookup("38\x0042", JOHN_SMITH)
    assert bad_id.status_code == 400 and conforms(bad_id, LOOKUP)
    xseries.faults(status=503, method="GET")
    unavailable = await pos.search("John Smith")
    assert unavailable.status_code == 503 and conforms(unavailable, SEARCH)
    conforms(await pos.lookup("3842", JOHN_SMITH), LOOKUP)
    xseries.clear_faults()


async def test_redeem_answers_conform(both: Gateway, runtime: Runtime) -> None:
    pos = KountaPos(both)
    member = await john(pos)
    coffee = reward_url(member, "free-coffee")
    assert conforms(await both.client.get(redeem_path(coffee, JOHN_ORDER)), REDEEM) == {
        "success": True
    }
    again = await both.client.post(redeem_path(coffee, JOHN_ORDER))
    assert conforms(again, REDEEM, "post") == {"success": True}
    pay = reward_url(await john(pos), "pay-with-points")
    too_much = await both.client.get(redeem_path(pay, JOHN_ORDER) + "&quantity=500")
    assert conforms(too_much, REDEEM)["success"] is False
    complete = await both.client.get(redeem_path(pay, LUCY_COMPLETE_ORDER) + "&quantity=1")
    assert conforms(complete, REDEEM)["success"] is False
    no_order = await both.client.get(redeem_path(pay, ""))
    assert conforms(no_order, REDEEM) == {"success": False, "error": "order_id is missing"}
    offer = pay.split("/kounta/redeem/")[1].split("?")[0]
    expired = offers.mint(
        offer_key(runtime), both.merchant.id, JOHN_SMITH, "pay-with-points", int(time.time()) - 1
    )
    stale = await both.client.get(redeem_path(pay.replace(offer, expired), JOHN_ORDER))
    assert conforms(stale, REDEEM)["success"] is False
    forged = await both.client.get(redeem_path(pay.replace(offer, "forged"), JOHN_ORDER))
    assert conforms(forged, REDEEM)["success"] is False


async def test_redeem_by_post_answers_conform(both: Gateway) -> None:
    pay = redeem_path(reward_url(await john(KountaPos(both)), "pay-with-points"), JOHN_ORDER)
    form = await both.client.post(pay, data={"quantity": "2"})
    assert conforms(form, REDEEM, "post") == {"success": True}
    unreadable = await both.client.post(
        pay, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert unreadable.status_code == 400
    assert conforms(unreadable, REDEEM, "post")["success"] is False
    not_an_object = await both.client.post(pay, json=[1])
    assert not_an_object.status_code == 400 and conforms(not_an_object, REDEEM, "post")
    too_large = await both.client.post(
        pay, content=b"x" * (both.runtime.settings.max_body_bytes + 1),
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert too_large.status_code == 413 and conforms(too_large, REDEEM, "post")


@pytest.mark.parametrize("path", [SEARCH, LOOKUP, REDEEM])
def test_every_operation_documents_its_success(path: str) -> None:
    for operation in document()["paths"][path].values():
        assert "200" in operation["responses"]
