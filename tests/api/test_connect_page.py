"""The connect page over a real gateway server, driven like a browser against both
sandboxes' consent pages: connecting, refusals (Deny, replayed and forged states, a spent
code), bad links, the API key shown once, disconnecting, Kounta's payment method, and the
page itself (escaped, no script, no secret in a log)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.app import create_app
from gateway.domain import signed
from gateway.domain.merchant import ConnectionStatus, Merchant, Pos
from gateway.observability import configure_logging
from gateway.pos.xseries.oauth import SCOPES
from gateway.runtime import Runtime
from gateway.sandbox import kounta as kounta_sandbox
from gateway.services import connect
from gateway.services.context import Services
from gateway.services.subscriptions import KOUNTA_TOPICS
from gateway.settings import Settings
from gateway.store import connections as invite_store
from gateway.store.merchants import get_merchant, set_status
from gateway.store.models import PosCredentialRow
from tests.api.pages import Browser, Consent, Page, consent, pointed_at_sandboxes, read_page
from tests.sandbox.consent import APP, read_form
from tests.support import SandboxHandle, ServerThread, free_port

ADDON_TOKEN = "test-addon-token"  # tests/conftest.py settings
KOUNTA_HOOKS = "/v1/companies/5678/webhooks"
XSERIES_LIFETIME_S = 86400  # the sandboxes' token lifetimes
KOUNTA_LIFETIME_S = 3600
NAME = "Corner Café"
EVENT_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)  # onclick=...


@pytest.fixture
def settings(
    settings: Settings, public_port: int, xseries: SandboxHandle, kounta: SandboxHandle
) -> Settings:
    return pointed_at_sandboxes(settings, f"http://127.0.0.1:{public_port}", xseries, kounta)


@dataclass
class Shop:
    """The merchant's side: its link, a browser, and the gateway's store to check."""

    runtime: Runtime
    browser: Browser
    link: str
    token: str
    merchant_id: str

    async def page(self) -> Page:
        page = await self.browser.open(self.link)
        assert page.status == 200, page.html
        return page

    async def merchant(self) -> Merchant:
        async with self.runtime.db.read() as session:
            merchant = await get_merchant(session, self.merchant_id)
        assert merchant is not None
        return merchant

    async def credential(self, pos: Pos) -> PosCredentialRow | None:
        async with self.runtime.db.read() as session:
            row: PosCredentialRow | None = await session.scalar(
                select(PosCredentialRow).where(
                    PosCredentialRow.merchant_id == self.merchant_id,
                    PosCredentialRow.pos == pos.value,
                )
            )
        return row

    async def connect(self, label: str, decision: str = "approve") -> Consent:
        page = await self.page()
        button = next(
            text
            for text in (f"Connect {label}", f"Reconnect {label}", f"Connect {label} again")
            if page.has_link(text)
        )
        return await consent(self.browser, page, button, decision)

    async def connected(self, label: str) -> Page:
        """Connect ``label`` all the way; the page the browser lands on."""
        trip = await self.connect(label)
        assert trip.callback.status_code == 303, trip.callback.text
        landed = await self.browser.follow(trip.callback)
        assert landed.status_code == 200
        return read_page(landed)


async def invite(runtime: Runtime, name: str = NAME) -> connect.Invitation:
    return await connect.invite(Services(runtime), name)


@pytest.fixture
async def shop(runtime: Runtime, live: ServerThread) -> AsyncIterator[Shop]:
    invitation = await invite(runtime)
    async with httpx.AsyncClient(timeout=30) as client:
        yield Shop(runtime, Browser(client, live.url), connect.link(runtime.settings, invitation),
                   invitation.token, invitation.merchant.id)  # fmt: skip


def callback(gateway: str, pos: str, **params: str) -> str:
    """The gateway's callback as a POS would send the browser to it."""
    return str(httpx.URL(f"{gateway}/connect/{pos}/callback", params=params))


def live_tokens(sandbox: SandboxHandle) -> dict[str, list[str]]:
    answer = httpx.get(f"{sandbox.url}/_sandbox/oauth/tokens")
    answer.raise_for_status()
    tokens: dict[str, list[str]] = answer.json()
    return tokens


def near(moment: datetime | None, seconds: int) -> bool:
    assert moment is not None
    expected = datetime.now(UTC) + timedelta(seconds=seconds)
    return abs((moment - expected).total_seconds()) < 120


# --------------------------------------------------------------------------- the whole flow


async def test_connecting_both_pos_from_the_link(
    shop: Shop, live: ServerThread, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    first = await shop.page()
    assert NAME in first.title and f"Connect {NAME}" in first.text
    assert "X-Series NOT CONNECTED Not connected yet." in first.text
    assert "Kounta NOT CONNECTED Not connected yet." in first.text
    assert not first.has_form("Disconnect X-Series") and "Customer Search URL" not in first.text

    trip = await shop.connect("X-Series")
    asked = trip.consent_query
    assert trip.start.headers["location"].startswith(f"{xseries.url}/connect?")
    assert asked["scope"] == SCOPES and asked["client_id"] == APP["client_id"]
    assert asked["redirect_uri"] == f"{live.url}/connect/xseries/callback"
    assert "Approve" in trip.consent.text
    assert trip.callback_url.startswith(f"{live.url}/connect/xseries/callback?")
    assert trip.callback.headers["location"] == f"/connect/{shop.token}?connected=xseries"
    page = read_page(await shop.browser.follow(trip.callback))
    assert "X-Series is connected." in page.text
    assert "X-Series CONNECTED Connected. Access valid until" in page.text
    assert page.has_link("Reconnect X-Series") and page.has_form("Disconnect X-Series")

    merchant = await shop.merchant()
    account = merchant.accounts[Pos.XSERIES]
    assert (account.status, account.base_url, account.account_id) == (
        ConnectionStatus.CONNECTED, xseries.url, "starkdemo")  # fmt: skip
    assert near(account.expires_at, XSERIES_LIFETIME_S)
    assert (
        account.expires_at is not None and f"{account.expires_at:%Y-%m-%d %H:%M} UTC" in page.text
    )
    await _stored_encrypted(shop, Pos.XSERIES, xseries)
    hooks = xseries.get("/api/webhooks")
    assert sorted(h["type"] for h in hooks) == ["customer.update", "product.update", "sale.update"]
    assert all(h["url"].startswith(f"{live.url}/webhooks/xseries/") for h in hooks)

    page = await shop.connected("Kounta")
    assert "Kounta is connected." in page.text
    assert "Kounta CONNECTED Connected. Access valid until" in page.text
    kounta_account = (await shop.merchant()).accounts[Pos.KOUNTA]
    assert kounta_account.status is ConnectionStatus.CONNECTED
    assert (kounta_account.base_url, kounta_account.account_id) == (kounta.url, "5678")
    assert kounta_account.settings == {"payment_method_id": "12"}  # "Loyalty Points"
    assert near(kounta_account.expires_at, KOUNTA_LIFETIME_S)
    await _stored_encrypted(shop, Pos.KOUNTA, kounta)
    hooks = kounta.get(KOUNTA_HOOKS)
    assert {h["address"] for h in hooks} == {f"{live.url}/webhooks/kounta"}
    assert sorted(h["topic"] for h in hooks) == sorted(KOUNTA_TOPICS)

    addon = f"{live.url}/kounta/{ADDON_TOKEN}"
    steps = page.sections["kounta-addon"]
    for step in ("back office", "Add-ons", "loyalty add-on", "Loyalty tab",
                 "Enable Integrated Customers", "Customer Search URL", "Actions/Rewards URL",
                 "Save"):  # fmt: skip
        assert step in steps, step
    assert f"{addon}/customer-search" in steps and f"{addon}/reward-lookup" in steps
    assert not page.has_form("Use this payment method")  # it could be guessed
    assert "X-Series CONNECTED" in page.text  # still
    assert len(shop.browser.seen) >= 10  # every gateway page on the way passed check_page


async def _stored_encrypted(shop: Shop, pos: Pos, sandbox: SandboxHandle) -> None:
    """The tokens the POS issued, stored encrypted: the ciphertext is not the token."""
    row = await shop.credential(pos)
    assert row is not None and row.access_token and row.refresh_token
    access = shop.runtime.cipher.decrypt(row.access_token)
    refresh = shop.runtime.cipher.decrypt(row.refresh_token)
    issued = live_tokens(sandbox)
    assert access in issued["access_tokens"] and refresh in issued["refresh_tokens"]
    assert access.encode() not in row.access_token and refresh.encode() not in row.refresh_token


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("label", ["X-Series", "Kounta"])
async def test_deny_on_the_consent_page_stores_nothing(shop: Shop, label: str) -> None:
    pos = Pos.XSERIES if label == "X-Series" else Pos.KOUNTA
    trip = await shop.connect(label, decision="deny")
    assert trip.callback_query["error"] == "access_denied"
    refused = read_page(trip.callback)
    assert refused.status == 400
    assert f"{label} was not connected (you declined): nothing was stored" in refused.text
    assert refused.link("Back to your connect page") == shop.link
    assert await shop.credential(pos) is None
    page = await shop.page()
    assert f"{label} NOT CONNECTED" in page.text


async def test_a_replayed_callback_is_refused_and_changes_nothing(
    shop: Shop, xseries: SandboxHandle
) -> None:
    trip = await shop.connect("X-Series")
    assert trip.callback.status_code == 303
    before = await shop.credential(Pos.XSERIES)
    assert before is not None
    exchanges = xseries.count("POST /api/1.0/token")
    replayed = read_page(await shop.browser.get(trip.callback_url))
    assert replayed.status == 400
    assert "was not started from a valid connect link, or was already finished" in replayed.text
    assert "Start again from the connect link you were sent" in replayed.text
    assert not replayed.has_link("Back to your connect page")  # the state tells no invite
    assert xseries.count("POST /api/1.0/token") == exchanges  # the code was not presented
    after = await shop.credential(Pos.XSERIES)
    assert after is not None
    assert (after.access_token, after.refresh_token, after.expires_at, after.status) == (
        before.access_token, before.refresh_token, before.expires_at, before.status)  # fmt: skip


@pytest.mark.parametrize("forge", ["made-up", "unsigned", "signed-elsewhere", "other-pos"], ids=str)
async def test_a_forged_state_is_refused_and_stores_nothing(
    shop: Shop, live: ServerThread, xseries: SandboxHandle, forge: str
) -> None:
    """The POS sends a real code back with a state the gateway did not hand out (or handed
    out for the other POS): refused before the code is used."""
    page = await shop.page()
    start = await shop.browser.get(page.link("Connect Kounta" if forge == "other-pos"
                                             else "Connect X-Series"))  # fmt: skip
    state = {
        "made-up": "abc.def",
        "unsigned": "some-state-id",
        "signed-elsewhere": signed.sign(b"another gateway's key", connect.STATE, "x" * 32),
        "other-pos": httpx.URL(start.headers["location"]).params["state"],
    }[forge]
    code = await _code(xseries, f"{live.url}/connect/xseries/callback", scope=SCOPES)
    answer = await shop.browser.get(
        callback(live.url, "xseries", code=code, domain_prefix="starkdemo", state=state)
    )
    refused = read_page(answer)
    assert refused.status == 400
    assert "was not started from a valid connect link" in refused.text
    assert not refused.has_link("Back to your connect page")
    assert await shop.credential(Pos.XSERIES) is None
    assert xseries.count("POST /api/1.0/token") == 0


async def _code(sandbox: SandboxHandle, redirect_uri: str, **extra: str) -> str:
    """A code the POS issued for our app (an approval made elsewhere)."""
    async with httpx.AsyncClient(base_url=sandbox.url) as client:
        query = {"response_type": "code", "client_id": APP["client_id"], "state": "theirs",
                 "redirect_uri": redirect_uri, **extra}  # fmt: skip
        decided = await client.post(
            "/connect" if "scope" in extra else "/authorize", data={**query, "decision": "approve"}
        )
    assert decided.status_code == 303, decided.text
    code: str = httpx.URL(decided.headers["location"]).params["code"]
    return code


@pytest.mark.parametrize("label", ["X-Series", "Kounta"])
async def test_a_spent_code_is_refused_and_stores_nothing(
    shop: Shop, xseries: SandboxHandle, kounta: SandboxHandle, label: str
) -> None:
    """Someone else presented the code first: the POS refuses it to the gateway, which says
    so and stores nothing."""
    pos, sandbox = (Pos.XSERIES, xseries) if label == "X-Series" else (Pos.KOUNTA, kounta)
    page = await shop.page()
    start = await shop.browser.get(page.link(f"Connect {label}"))
    shown = await shop.browser.follow(start)
    form = read_form(shown.text)
    decided = await shop.browser.client.post(str(shown.url).split("?")[0],
                                             data=form.submission("approve"))  # fmt: skip
    back = decided.headers["location"]
    code = httpx.URL(back).params["code"]
    token_path = "/api/1.0/token" if pos is Pos.XSERIES else "/v1/token"
    first = await shop.browser.client.post(f"{sandbox.url}{token_path}", data={
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": httpx.URL(start.headers["location"]).params["redirect_uri"], **APP})  # fmt: skip
    assert first.status_code == 200  # spent
    refused = read_page(await shop.browser.get(back))
    assert refused.status == 400
    assert f"{label} did not accept the connection" in refused.text
    assert "nothing was stored" in refused.text
    assert refused.link("Back to your connect page") == shop.link
    assert await shop.credential(pos) is None


async def test_a_reused_code_leaves_the_connection_as_it_was(shop: Shop) -> None:
    """A code used once, sent back again under a new, valid state (a reconnect): refused,
    and the connection keeps its tokens."""
    trip = await shop.connect("X-Series")
    assert trip.callback.status_code == 303
    before = await shop.credential(Pos.XSERIES)
    assert before is not None
    again = await shop.browser.get((await shop.page()).link("Reconnect X-Series"))
    state = httpx.URL(again.headers["location"]).params["state"]
    old_code = trip.callback_query["code"]
    answer = await shop.browser.get(
        callback(shop.browser.gateway, "xseries", code=old_code, domain_prefix="starkdemo",
                 state=state)
    )  # fmt: skip
    refused = read_page(answer)
    assert refused.status == 400
    assert "X-Series did not accept the connection (invalid_grant)" in refused.text
    assert refused.link("Back to your connect page") == shop.link
    after = await shop.credential(Pos.XSERIES)
    assert after is not None
    assert (after.access_token, after.expires_at, after.status) == (
        before.access_token, before.expires_at, before.status)  # fmt: skip


async def test_a_pos_error_text_is_shown_escaped(shop: Shop, live: ServerThread) -> None:
    page = await shop.page()
    start = await shop.browser.get(page.link("Connect Kounta"))
    state = httpx.URL(start.headers["location"]).params["state"]
    error = '<img src=x onerror="alert(1)">'
    answer = await shop.browser.get(callback(live.url, "kounta", error=error, state=state))
    assert answer.status_code == 400
    assert "<img" not in answer.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in answer.text


# --------------------------------------------------------------------------- links


async def test_a_link_that_is_not_one_is_404_with_a_message(shop: Shop, live: ServerThread) -> None:
    forged = shop.token.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAA"
    unknown = signed.sign(shop.runtime.settings.secret_key_bytes, connect.INVITE, "no-such-invite")
    for token in ("garbage", forged, unknown, "x" * 5000):
        for method, suffix in (("GET", ""), ("GET", "/xseries"), ("GET", "/kounta"),
                               ("POST", "/api-key"), ("POST", "/finish"),
                               ("POST", "/xseries/disconnect"),
                               ("POST", "/kounta/payment-method")):  # fmt: skip
            answer = await shop.browser.client.request(
                method, f"{live.url}/connect/{token}{suffix}"
            )
            shop.browser.seen.append(answer)
            page = read_page(answer)
            assert page.status == 404, (token[:20], suffix, page.html)
            assert "this connect link is not valid: ask for a new one" in page.text
            assert not page.has_link("Back to your connect page")


async def test_an_expired_link_is_410(shop: Shop, live: ServerThread) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=30)
    async with shop.runtime.db.transaction() as session:
        old = await invite_store.create_invite(session, shop.merchant_id, long_ago,
                                               timedelta(days=7))  # fmt: skip
    token = signed.sign(shop.runtime.settings.secret_key_bytes, connect.INVITE, old.id)
    page = await shop.browser.open(f"{live.url}/connect/{token}")
    assert page.status == 410
    assert "this connect link has expired: ask for a new one" in page.text
    start = await shop.browser.get(f"{live.url}/connect/{token}/xseries")
    assert start.status_code == 410


async def test_finish_ends_the_link(shop: Shop) -> None:
    done = read_page(await shop.browser.submit(await shop.page(), "Finish"))
    assert done.status == 200
    assert f"All done, {NAME}" in done.text and "This link no longer works" in done.text
    gone = await shop.browser.open(shop.link)
    assert gone.status == 410
    assert "this connect link was used to the end: ask for a new one" in gone.text
    assert (await shop.browser.get(shop.link + "/kounta")).status_code == 410


async def test_a_callback_after_finish_is_refused(shop: Shop) -> None:
    page = await shop.page()
    start = await shop.browser.get(page.link("Connect X-Series"))
    shown = await shop.browser.follow(start)
    form = read_form(shown.text)
    decided = await shop.browser.client.post(str(shown.url).split("?")[0],
                                             data=form.submission("approve"))  # fmt: skip
    await shop.browser.submit(page, "Finish")
    refused = read_page(await shop.browser.get(decided.headers["location"]))
    assert refused.status == 400
    assert "start again from your connect page" in refused.text
    assert await shop.credential(Pos.XSERIES) is None


# --------------------------------------------------------------------------- the forms


async def test_an_api_key_is_shown_once_and_answers_graphql(shop: Shop, live: ServerThread) -> None:
    await shop.connected("X-Series")
    answer = await shop.browser.submit(await shop.page(), "Create an API key")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    shown = read_page(answer)
    assert "This key is shown once." in shown.text and "cannot be shown again" in shown.text
    key = shown.codes["api-key"]
    assert key
    assert shown.link("Back to your connect page") == shop.link
    assert key not in (await shop.page()).html

    query = "{ merchant { name connections { pos status } } }"
    graphql = await shop.browser.client.post(f"{live.url}/graphql", json={"query": query},
                                             headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert graphql.status_code == 200, graphql.text
    assert graphql.json() == {"data": {"merchant": {
        "name": NAME, "connections": [{"pos": "XSERIES", "status": "CONNECTED"}]}}}  # fmt: skip
    second = read_page(await shop.browser.submit(await shop.page(), "Create an API key"))
    assert second.codes["api-key"] != key


@pytest.mark.parametrize("label", ["X-Series", "Kounta"])
async def test_disconnecting_removes_the_webhooks_and_shows_disconnected(
    shop: Shop, xseries: SandboxHandle, kounta: SandboxHandle, label: str
) -> None:
    await shop.connected("X-Series")
    await shop.connected("Kounta")
    pos = Pos.XSERIES if label == "X-Series" else Pos.KOUNTA
    assert xseries.get("/api/webhooks") and kounta.get(KOUNTA_HOOKS)
    answer = await shop.browser.submit(await shop.page(), f"Disconnect {label}")
    slug = "xseries" if pos is Pos.XSERIES else "kounta"
    assert answer.headers["location"] == f"/connect/{shop.token}?disconnected={slug}"
    page = read_page(await shop.browser.follow(answer))
    assert f"{label} is disconnected." in page.text
    assert f"{label} DISCONNECTED Disconnected." in page.text
    assert page.has_link(f"Connect {label} again") and not page.has_form(f"Disconnect {label}")
    if pos is Pos.XSERIES:
        assert xseries.get("/api/webhooks") == []
        assert kounta.get(KOUNTA_HOOKS)  # the other POS keeps its own
    else:
        assert kounta.get(KOUNTA_HOOKS) == []
        assert "Customer Search URL" not in page.text
        assert len(xseries.get("/api/webhooks")) == 3
    merchant = await shop.merchant()
    assert merchant.accounts[pos].status is ConnectionStatus.DISCONNECTED
    row = await shop.credential(pos)
    assert row is not None and row.access_token is None and row.refresh_token is None

    page = await shop.connected(label)  # and back again
    assert f"{label} CONNECTED" in page.text
    assert (await shop.merchant()).accounts[pos].status is ConnectionStatus.CONNECTED


def ambiguous_methods() -> dict[str, Any]:
    """The Kounta demo data where two payment methods could be the loyalty one."""
    data: dict[str, Any] = json.loads(kounta_sandbox.DEMO_FIXTURES.read_text())
    data["payment_methods"].append({"id": 21, "name": "Reward voucher", "ledger_code": "291"})
    return data


async def test_the_payment_method_is_chosen_when_it_cannot_be_guessed(
    shop: Shop, kounta: SandboxHandle
) -> None:
    kounta.reset(ambiguous_methods())
    early = await shop.browser.client.post(f"{shop.link}/kounta/payment-method",
                                           data={"method": "12"})  # fmt: skip
    assert early.status_code == 400 and "connect Kounta first" in early.text
    page = await shop.connected("Kounta")
    assert (await shop.merchant()).accounts[Pos.KOUNTA].settings == {}
    assert "Which Kounta payment method is loyalty?" in page.text
    form = page.form("Use this payment method")
    assert [(value, label) for _, value, label in form.radios] == [
        ("1", "Cash"), ("7", "Card"), ("12", "Loyalty Points"), ("21", "Reward voucher")]  # fmt: skip

    wrong = read_page(await shop.browser.submit(page, "Use this payment method", method="99"))
    assert wrong.status == 400
    assert "choose one of the company's payment methods" in wrong.text
    assert wrong.link("Back to your connect page") == shop.link
    none = await shop.browser.submit(page, "Use this payment method")
    assert none.status_code == 400

    chosen = await shop.browser.submit(page, "Use this payment method", method="21")
    assert chosen.headers["location"] == f"/connect/{shop.token}?chosen=payment-method"
    after = read_page(await shop.browser.follow(chosen))
    assert "The loyalty payment method is saved." in after.text
    assert not after.has_form("Use this payment method")
    assert (await shop.merchant()).accounts[Pos.KOUNTA].settings == {"payment_method_id": "21"}

    again = await shop.connected("Kounta")  # reconnecting the same company keeps the choice
    assert not again.has_form("Use this payment method")
    assert (await shop.merchant()).accounts[Pos.KOUNTA].settings == {"payment_method_id": "21"}


@pytest.mark.parametrize(("label", "pos", "path"), [
    ("X-Series", Pos.XSERIES, "/api/webhooks"),
    ("Kounta", Pos.KOUNTA, "/v1/companies/5678/webhooks"),
])  # fmt: skip
async def test_a_webhook_refusal_leaves_the_connection_standing(
    shop: Shop, xseries: SandboxHandle, kounta: SandboxHandle, label: str, pos: Pos, path: str
) -> None:
    """Connected is connected: webhooks the POS refuses now are checked again at start-up,
    and reconciliation finds what they would have said."""
    sandbox = xseries if pos is Pos.XSERIES else kounta
    sandbox.faults(status=503, method="POST", path=path)
    page = await shop.connected(label)
    assert f"{label} CONNECTED" in page.text
    assert "nothing was stored" not in page.text
    assert (await shop.merchant()).accounts[pos].status is ConnectionStatus.CONNECTED


# --------------------------------------------------------------------------- the page


async def test_the_page_shows_what_needs_reconnecting_and_why(shop: Shop) -> None:
    await shop.connected("X-Series")
    async with shop.runtime.db.transaction() as session:
        await set_status(session, shop.merchant_id, Pos.XSERIES,
                         ConnectionStatus.RECONNECT_NEEDED, "the refresh token was refused")  # fmt: skip
    page = await shop.page()
    assert "X-Series RECONNECT NEEDED Reconnect needed: the refresh token was refused." in (
        page.text
    )
    assert page.has_link("Reconnect X-Series") and page.has_form("Disconnect X-Series")
    again = await shop.connected("X-Series")
    assert "X-Series CONNECTED" in again.text


async def test_the_page_escapes_what_it_shows(runtime: Runtime, live: ServerThread) -> None:
    invitation = await invite(runtime, name='Tom & Jerry\'s <b>"Café"</b>')
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{live.url}/connect/{invitation.token}")
    assert answer.status_code == 200
    assert "<b>" not in answer.text
    assert "Tom &amp; Jerry&#39;s &lt;b&gt;&#34;Café&#34;&lt;/b&gt;" in answer.text


async def test_no_page_runs_a_script(shop: Shop, kounta: SandboxHandle) -> None:
    """Every page a merchant can meet: plain HTML and forms, and a policy that would refuse
    a script if one were ever slipped in."""
    kounta.reset(ambiguous_methods())
    pages = [await shop.browser.get(shop.link)]
    await shop.connected("X-Series")
    await shop.connected("Kounta")
    pages.append(await shop.browser.get(shop.link))  # URLs, the payment-method form
    pages.append(await shop.browser.submit(read_page(pages[-1]), "Create an API key"))
    pages.append((await shop.connect("X-Series", decision="deny")).callback)
    pages.append(await shop.browser.submit(await shop.page(), "Finish"))
    pages.append(await shop.browser.get(shop.link))  # gone
    assert [page.status_code for page in pages] == [200, 200, 200, 400, 200, 410]
    for page in pages:
        assert "<script" not in page.text.lower()
        assert not EVENT_HANDLER.search(page.text), EVENT_HANDLER.search(page.text)
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy


async def test_a_whole_connect_logs_no_secret(
    runtime: Runtime,
    settings: Settings,
    xseries: SandboxHandle,
    kounta: SandboxHandle,
    capfd: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    chatty = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}",
                                         "log_level": "DEBUG", "log_json": True})  # fmt: skip
    server = ServerThread(create_app(chatty), port=port, lifespan=True).start()
    try:
        invitation = await invite(runtime)
        async with httpx.AsyncClient(timeout=30) as client:
            shop = Shop(runtime, Browser(client, server.url), connect.link(chatty, invitation),
                        invitation.token, invitation.merchant.id)  # fmt: skip
            xs = await shop.connect("X-Series")
            await shop.browser.get(xs.callback_url)  # replayed
            ko = await shop.connect("Kounta")
            key = read_page(await shop.browser.submit(await shop.page(), "Create an API key"))
            await shop.browser.submit(await shop.page(), "Disconnect Kounta")
    finally:
        server.stop()
        configure_logging("WARNING", json=False)
    logs = capfd.readouterr().err
    assert "/connect/***" in logs and "pos connected" in logs  # we did log
    issued = [*live_tokens(xseries)["access_tokens"], *live_tokens(xseries)["refresh_tokens"],
              *live_tokens(kounta)["access_tokens"], *live_tokens(kounta)["refresh_tokens"]]  # fmt: skip
    for secret in (invitation.token, invitation.invite.id, key.codes["api-key"],
                   xs.callback_query["code"], xs.callback_query["state"],
                   ko.callback_query["code"], ko.callback_query["state"], *issued):  # fmt: skip
        assert secret not in logs, secret
