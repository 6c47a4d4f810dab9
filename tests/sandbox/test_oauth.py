"""OAuth in both sandboxes, as an app meets it: the consent page, codes, the token endpoint
(exchange and refresh, rotation), token lifetimes, X-Series' scopes per token, lost answers,
and one full round over real HTTP per sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from gateway.sandbox import kounta, oauth, xseries
from gateway.settings import Settings
from tests.sandbox.conftest import START, FakeClock
from tests.sandbox.consent import (
    APP,
    APP_ID,
    APP_SECRET,
    CALLBACK,
    consent_query,
    read_form,
    redirect_params,
)
from tests.support import ServerThread

ASKS = "retailer:read customers:read"
OTHER_APP = {"client_id": "other-app", "client_secret": "other-secret"}


@dataclass(frozen=True)
class Pos:
    """What differs between the two sandboxes' OAuth, for the tests that hold for both."""

    name: str
    create_app: Callable[..., Starlette]
    consent: str
    token: str
    probe: str  # an API read every token may make
    headers: dict[str, str]
    asks: dict[str, str] = field(default_factory=dict)  # what its consent needs besides
    expired: dict[str, str] = field(default_factory=dict)
    answer: frozenset[str] = frozenset()
    lifetime_s: int = 0

    def __str__(self) -> str:
        return self.name


XSERIES = Pos(
    name="xseries",
    create_app=xseries.create_app,
    consent="/connect",
    token="/api/1.0/token",
    probe="/api/config",
    headers={},
    asks={"scope": ASKS},
    expired={"error": "Access token is not valid", "details": "The access token has expired."},
    answer=frozenset(
        [
            "access_token",
            "token_type",
            "expires",
            "expires_in",
            "refresh_token",
            "domain_prefix",
            "scope",
        ]
    ),
    lifetime_s=86400,
)
KOUNTA = Pos(
    name="kounta",
    create_app=kounta.create_app,
    consent="/authorize",
    token="/v1/token",
    probe="/v1/companies/me",
    headers={"Accept": "application/json"},
    expired={"error": "The access token provided has expired"},
    answer=frozenset({"access_token", "refresh_token", "expires_in", "token_type"}),
    lifetime_s=3600,
)


@pytest.fixture(params=[XSERIES, KOUNTA], ids=str)
def pos(request: pytest.FixtureRequest) -> Pos:
    chosen: Pos = request.param
    return chosen


@asynccontextmanager
async def serve(pos: Pos, clock: FakeClock, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = pos.create_app(clock=clock, **options)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox", headers=pos.headers
    ) as client:
        yield client


@pytest.fixture
async def web(pos: Pos, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(pos, clock) as client:
        yield client


@pytest.fixture
async def xs(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(XSERIES, clock) as client:
        yield client


async def approve(client: httpx.AsyncClient, pos: Pos, **params: str) -> dict[str, str]:
    """The merchant approves: the page read, its form submitted; where the browser goes."""
    page = await client.get(pos.consent, params=consent_query(**{**pos.asks, **params}))
    assert page.status_code == 200, page.text
    form = read_form(page.text)
    return redirect_params(await client.post(form.action, data=form.submission("approve")))


async def exchange(client: httpx.AsyncClient, pos: Pos, code: str, **form: str) -> httpx.Response:
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    return await client.post(pos.token, data={**body, **APP, **form})


async def refresh(client: httpx.AsyncClient, pos: Pos, token: str, **form: str) -> httpx.Response:
    body = {"grant_type": "refresh_token", "refresh_token": token}
    return await client.post(pos.token, data={**body, **APP, **form})


async def connect(client: httpx.AsyncClient, pos: Pos, **params: str) -> dict[str, Any]:
    """Consent and exchange: the app's token answer."""
    answer = await exchange(client, pos, (await approve(client, pos, **params))["code"])
    assert answer.status_code == 200, answer.text
    pair: dict[str, Any] = answer.json()
    return pair


async def call(client: httpx.AsyncClient, path: str, token: str) -> httpx.Response:
    return await client.get(path, headers={"Authorization": f"Bearer {token}"})


async def live(client: httpx.AsyncClient) -> dict[str, list[str]]:
    response = await client.get("/_sandbox/oauth/tokens")
    assert response.status_code == 200
    tokens: dict[str, list[str]] = response.json()
    return tokens


async def add_other_app(client: httpx.AsyncClient) -> None:
    response = await client.post("/_sandbox/oauth/clients", json=OTHER_APP)
    assert response.status_code == 200, response.text


# -- the consent page ----------------------------------------------------------------------------


async def test_the_consent_page_is_a_form_to_approve_or_deny(
    web: httpx.AsyncClient, pos: Pos
) -> None:
    page = await web.get(pos.consent, params=consent_query(**pos.asks))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    form = read_form(page.text)
    assert (form.forms, form.method.lower(), form.action) == (1, "post", pos.consent)
    assert form.hidden == consent_query(**pos.asks)
    assert form.buttons == [("decision", "approve"), ("decision", "deny")]
    assert APP_ID in form.text
    if pos is XSERIES:
        assert "retailer:read" in form.text and "customers:read" in form.text


async def test_approving_sends_the_browser_back_with_a_code_and_the_state(
    web: httpx.AsyncClient, pos: Pos
) -> None:
    back = await approve(web, pos, redirect_uri=f"{CALLBACK}?shop=7", state="xyz")
    expected = {"code", "state", "shop"} | ({"domain_prefix"} if pos is XSERIES else set())
    assert set(back) == expected
    assert (back["state"], back["shop"]) == ("xyz", "7")
    if pos is XSERIES:
        assert back["domain_prefix"] == "starkdemo"


async def test_the_redirect_goes_to_the_redirect_uri_with_303(
    web: httpx.AsyncClient, pos: Pos
) -> None:
    page = await web.get(pos.consent, params=consent_query(**pos.asks))
    form = read_form(page.text)
    answer = await web.post(form.action, data=form.submission("approve"))
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK


async def test_denying_sends_the_browser_back_with_access_denied(
    web: httpx.AsyncClient, pos: Pos
) -> None:
    page = await web.get(pos.consent, params=consent_query(**pos.asks, state="s-1"))
    form = read_form(page.text)
    back = redirect_params(await web.post(form.action, data=form.submission("deny")))
    assert back == {"error": "access_denied", "state": "s-1"}
    assert (await live(web))["refresh_tokens"] == (
        [] if pos is XSERIES else ["demo-kounta-refresh"]
    )


REFUSED = [
    ({"client_id": "unknown-app"}, "not a known app"),
    ({"client_id": ""}, "client_id is required"),
    ({"redirect_uri": ""}, "redirect_uri"),
    ({"redirect_uri": "/oauth/callback"}, "redirect_uri"),
    ({"redirect_uri": "ftp://gw.example/cb"}, "redirect_uri"),
    ({"redirect_uri": "https:///cb"}, "redirect_uri"),
    ({"redirect_uri": f"{CALLBACK}#frag"}, "redirect_uri"),
    ({"response_type": "token"}, "response_type"),
    ({"response_type": ""}, "response_type"),
    ({"state": ""}, "state is required"),
]


@pytest.mark.parametrize(("change", "problem"), REFUSED)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_bad_consent_request_is_a_400_page_and_never_a_redirect(
    web: httpx.AsyncClient, pos: Pos, method: str, change: dict[str, str], problem: str
) -> None:
    params = consent_query(**{**pos.asks, **change})
    if method == "GET":
        answer = await web.get(pos.consent, params=params)
    else:
        answer = await web.post(pos.consent, data={**params, "decision": "approve"})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "location" not in answer.headers
    assert problem in answer.text
    assert "<form" not in answer.text


async def test_a_parameter_given_twice_is_refused(web: httpx.AsyncClient, pos: Pos) -> None:
    query: list[tuple[str, str | int | float | bool | None]] = [
        *consent_query(**pos.asks).items(),
        ("redirect_uri", "https://evil.example/"),
    ]
    answer = await web.get(pos.consent, params=query)
    assert answer.status_code == 400
    assert "redirect_uri is given more than once" in answer.text


@pytest.mark.parametrize("decision", [None, "", "yes", "Approve"])
async def test_the_form_needs_approve_or_deny(
    web: httpx.AsyncClient, pos: Pos, decision: str | None
) -> None:
    form = consent_query(**pos.asks)
    if decision is not None:
        form["decision"] = decision
    answer = await web.post(pos.consent, data=form)
    assert answer.status_code == 400
    assert "decision must be approve or deny" in answer.text


async def test_the_form_must_be_form_encoded(web: httpx.AsyncClient, pos: Pos) -> None:
    answer = await web.post(pos.consent, json={**consent_query(**pos.asks), "decision": "approve"})
    assert answer.status_code == 400
    assert "location" not in answer.headers


async def test_only_the_registered_redirect_uris_when_some_are(pos: Pos, clock: FakeClock) -> None:
    async with serve(pos, clock, redirect_uris=[CALLBACK]) as client:
        assert (await approve(client, pos))["code"]
        other = await client.get(
            pos.consent, params=consent_query(**pos.asks, redirect_uri="https://gw.example/x")
        )
        assert other.status_code == 400
        assert "not registered" in other.text


def test_a_registered_redirect_uri_must_be_absolute(pos: Pos) -> None:
    with pytest.raises(ValueError, match="not an absolute"):
        pos.create_app(redirect_uris=["/callback"])


async def test_the_page_escapes_what_it_shows(web: httpx.AsyncClient, pos: Pos) -> None:
    state = '"><script>alert(1)</script>'
    page = await web.get(pos.consent, params=consent_query(**pos.asks, state=state))
    assert "<script>" not in page.text
    assert read_form(page.text).hidden["state"] == state


# -- X-Series: scopes at consent and per token -----------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "problem"),
    [
        (None, "scope is required"),
        ("", "scope is required"),
        ("   ", "scope is required"),
        ("customers:read loyalty:write", "unknown scopes: loyalty:write"),
    ],
)
async def test_x_series_consent_needs_known_scopes(
    xs: httpx.AsyncClient, scope: str | None, problem: str
) -> None:
    params = consent_query() if scope is None else consent_query(scope=scope)
    answer = await xs.get("/connect", params=params)
    assert answer.status_code == 400
    assert problem in answer.text
    assert "location" not in answer.headers


async def test_an_x_series_token_holds_exactly_the_scopes_asked(xs: httpx.AsyncClient) -> None:
    pair = await connect(xs, XSERIES, scope="customers:read retailer:read")
    assert pair["scope"] == "retailer:read customers:read"
    token = pair["access_token"]
    assert (await call(xs, "/api/config", token)).status_code == 200
    assert (await call(xs, "/api/customers", token)).status_code == 200
    for path in ("/api/register_sales", "/api/products", "/api/webhooks"):
        refused = await call(xs, path, token)
        assert (refused.status_code, refused.json()) == (403, {"error": "permission denied"})
    adjust = await xs.post(
        xseries.ADJUSTMENTS_PATH, json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert adjust.status_code == 403


async def test_a_refreshed_x_series_token_keeps_its_scopes(xs: httpx.AsyncClient) -> None:
    pair = await connect(xs, XSERIES, scope="sales:read")
    renewed = (await refresh(xs, XSERIES, pair["refresh_token"])).json()
    assert renewed["scope"] == "sales:read"
    assert (await call(xs, "/api/register_sales", renewed["access_token"])).status_code == 200
    assert (await call(xs, "/api/customers", renewed["access_token"])).status_code == 403


async def test_the_sandbox_wide_scopes_are_the_ceiling_of_every_token(
    xs: httpx.AsyncClient,
) -> None:
    token = (await connect(xs, XSERIES, scope="retailer:read customers:read"))["access_token"]
    await xs.post("/_sandbox/scopes", json={"scopes": "retailer:read sales:read"})
    assert (await call(xs, "/api/config", token)).status_code == 200
    assert (await call(xs, "/api/customers", token)).status_code == 403
    assert (await call(xs, "/api/register_sales", token)).status_code == 403  # never asked
    await xs.delete("/_sandbox/scopes")
    assert (await call(xs, "/api/customers", token)).status_code == 200


async def test_the_issue_control_gives_x_series_tokens_the_scopes_named(
    xs: httpx.AsyncClient,
) -> None:
    pair = (await xs.post("/_sandbox/oauth/issue", json={"scopes": "sales:read"})).json()
    assert pair["scope"] == "sales:read"
    assert (await call(xs, "/api/register_sales", pair["access_token"])).status_code == 200
    assert (await call(xs, "/api/config", pair["access_token"])).status_code == 403
    everything = (await xs.post("/_sandbox/oauth/issue")).json()
    assert everything["scope"] == " ".join(xseries.SCOPES)
    bad = await xs.post("/_sandbox/oauth/issue", json={"scopes": "sales:read nope"})
    assert bad.status_code == 400 and "nope" in bad.json()["details"]


async def test_a_personal_token_without_a_static_one_is_any_token_but_an_issued_one(
    clock: FakeClock,
) -> None:
    """Without ``--token`` any bearer token the sandbox did not issue is a personal token;
    one it issued is held to its expiry."""
    async with serve(XSERIES, clock, token_lifetime_s=60) as client:
        pair = await connect(client, XSERIES)
        assert (await call(client, "/api/customers", "anything")).status_code == 200
        clock.advance(60)
        expired = await call(client, "/api/config", pair["access_token"])
        assert (expired.status_code, expired.json()) == (401, XSERIES.expired)


async def test_with_a_static_token_an_unknown_token_is_401(clock: FakeClock) -> None:
    async with serve(XSERIES, clock, token="static") as client:
        pair = await connect(client, XSERIES)
        assert (await call(client, "/api/config", pair["access_token"])).status_code == 200
        assert (await call(client, "/api/config", "static")).status_code == 200
        unknown = await call(client, "/api/config", "anything")
        assert (unknown.status_code, unknown.json()) == (
            401,
            {"error": "Access token is not valid"},
        )


# -- codes ---------------------------------------------------------------------------------------


async def test_a_code_is_exchanged_once(web: httpx.AsyncClient, pos: Pos) -> None:
    code = (await approve(web, pos))["code"]
    assert (await exchange(web, pos, code)).status_code == 200
    again = await exchange(web, pos, code)
    assert again.status_code == 400
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "code is invalid or already used",
    }


async def test_a_code_expires_after_ten_minutes(
    web: httpx.AsyncClient, pos: Pos, clock: FakeClock
) -> None:
    assert oauth.CODE_LIFETIME_S == 600
    first, second = (await approve(web, pos))["code"], (await approve(web, pos))["code"]
    clock.advance(599)
    assert (await exchange(web, pos, first)).status_code == 200
    clock.advance(1)
    late = await exchange(web, pos, second)
    assert (late.status_code, late.json()["error"]) == (400, "invalid_grant")
    assert late.json()["error_description"] == "code has expired"


async def test_a_code_is_bound_to_its_redirect_uri_and_spent_by_a_wrong_one(
    web: httpx.AsyncClient, pos: Pos
) -> None:
    code = (await approve(web, pos))["code"]
    wrong = await exchange(web, pos, code, redirect_uri="https://gw.example/other")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    assert (await exchange(web, pos, code)).json()["error"] == "invalid_grant"


async def test_a_code_is_bound_to_its_app(web: httpx.AsyncClient, pos: Pos) -> None:
    await add_other_app(web)
    code = (await approve(web, pos))["code"]
    other = await exchange(web, pos, code, **OTHER_APP)
    assert (other.status_code, other.json()["error"]) == (400, "invalid_grant")
    assert other.json()["error_description"] == "code was issued to another client"
    # and the other app's own consent works
    mine = (await approve(web, pos, client_id=OTHER_APP["client_id"]))["code"]
    assert (await exchange(web, pos, mine, **OTHER_APP)).status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_secret": "wrong"},
        {"client_id": "unknown-app"},
        {"client_secret": ""},
        {"client_id": "", "client_secret": ""},
    ],
)
async def test_wrong_client_credentials_are_401_and_spend_nothing(
    web: httpx.AsyncClient, pos: Pos, credentials: dict[str, str]
) -> None:
    code = (await approve(web, pos))["code"]
    refused = await exchange(web, pos, code, **credentials)
    assert (refused.status_code, refused.json()) == (401, {"error": "invalid_client"})
    pair = (await exchange(web, pos, code)).json()
    again = await refresh(web, pos, pair["refresh_token"], **credentials)
    assert (again.status_code, again.json()) == (401, {"error": "invalid_client"})
    assert (await refresh(web, pos, pair["refresh_token"])).status_code == 200


async def test_the_exchange_needs_its_fields(web: httpx.AsyncClient, pos: Pos) -> None:
    code = (await approve(web, pos))["code"]
    for missing in ("code", "redirect_uri"):
        body = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, **APP}
        del body[missing]
        answer = await web.post(pos.token, data=body)
        assert answer.status_code == 400
        assert answer.json() == {
            "error": "invalid_request",
            "error_description": f"{missing} is required",
        }
    assert (await exchange(web, pos, code)).status_code == 200  # not spent by those


async def test_the_token_endpoint_wants_a_form(web: httpx.AsyncClient, pos: Pos) -> None:
    code = (await approve(web, pos))["code"]
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, **APP}
    answer = await web.post(pos.token, json=body)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    unsupported = await web.post(pos.token, data={**body, "grant_type": "password"})
    assert unsupported.json() == {"error": "unsupported_grant_type"}


# -- tokens: the answer, lifetimes, rotation -----------------------------------------------------


async def test_the_token_answer_is_the_pos_own(web: httpx.AsyncClient, pos: Pos) -> None:
    code = (await approve(web, pos))["code"]
    answer = await exchange(web, pos, code)
    assert answer.headers["cache-control"] == "no-store"
    pair = answer.json()
    assert set(pair) == pos.answer
    assert (pair["token_type"], pair["expires_in"]) == ("Bearer", pos.lifetime_s)
    if pos is XSERIES:
        assert pair["expires"] == int(START) + 86400
        assert (pair["domain_prefix"], pair["scope"]) == ("starkdemo", ASKS)
    renewed = (await refresh(web, pos, pair["refresh_token"])).json()
    assert set(renewed) == pos.answer


async def test_an_access_token_works_until_its_lifetime_ends(pos: Pos, clock: FakeClock) -> None:
    async with serve(pos, clock, token_lifetime_s=60) as client:
        pair = await connect(client, pos)
        assert pair["expires_in"] == 60
        clock.advance(59)
        assert (await call(client, pos.probe, pair["access_token"])).status_code == 200
        clock.advance(1)
        expired = await call(client, pos.probe, pair["access_token"])
        assert (expired.status_code, expired.json()) == (401, pos.expired)
        assert expired.headers["www-authenticate"].startswith("Bearer")
        renewed = (await refresh(client, pos, pair["refresh_token"])).json()
        assert (await call(client, pos.probe, renewed["access_token"])).status_code == 200


async def test_every_refresh_rotates_and_revokes_the_refresh_token_given(
    web: httpx.AsyncClient, pos: Pos
) -> None:
    pair = await connect(web, pos)
    first = await refresh(web, pos, pair["refresh_token"])
    assert first.status_code == 200
    renewed = first.json()
    assert renewed["refresh_token"] != pair["refresh_token"]
    assert renewed["access_token"] != pair["access_token"]
    revoked = await refresh(web, pos, pair["refresh_token"])
    assert revoked.status_code == 400
    assert revoked.json() == {"error": "invalid_grant", "error_description": oauth.SPENT}
    assert pair["refresh_token"] not in (await live(web))["refresh_tokens"]
    assert renewed["refresh_token"] in (await live(web))["refresh_tokens"]
    assert (await refresh(web, pos, renewed["refresh_token"])).status_code == 200
    # the access token issued before the refresh lives on until it expires (inferred)
    assert (await call(web, pos.probe, pair["access_token"])).status_code == 200


async def test_a_refresh_token_is_bound_to_its_app(web: httpx.AsyncClient, pos: Pos) -> None:
    await add_other_app(web)
    pair = await connect(web, pos)
    other = await refresh(web, pos, pair["refresh_token"], **OTHER_APP)
    assert (other.status_code, other.json()["error"]) == (400, "invalid_grant")
    assert (await refresh(web, pos, pair["refresh_token"])).status_code == 200


async def test_the_expire_control_expires_issued_tokens_and_refresh_still_works(
    web: httpx.AsyncClient, pos: Pos
) -> None:
    pair = await connect(web, pos)
    expired = (await web.post("/_sandbox/oauth/expire")).json()["expired"]
    assert expired == (1 if pos is XSERIES else 2)  # Kounta's fixtures hand out a pair
    gone = await call(web, pos.probe, pair["access_token"])
    assert (gone.status_code, gone.json()) == (401, pos.expired)
    assert (await live(web))["access_tokens"] == []
    renewed = (await refresh(web, pos, pair["refresh_token"])).json()
    assert (await call(web, pos.probe, renewed["access_token"])).status_code == 200


async def test_reset_forgets_codes_tokens_and_added_apps(web: httpx.AsyncClient, pos: Pos) -> None:
    await add_other_app(web)
    pair = await connect(web, pos)
    code = (await approve(web, pos))["code"]
    assert (await web.post("/_sandbox/reset")).status_code == 200
    assert (await exchange(web, pos, code)).json()["error"] == "invalid_grant"
    assert (await refresh(web, pos, pair["refresh_token"])).json()["error"] == "invalid_grant"
    forgotten = await call(web, pos.probe, pair["access_token"])
    # X-Series without a static token takes a token it does not know as a personal one
    assert forgotten.status_code == (200 if pos is XSERIES else 401)
    other = await web.get(pos.consent, params=consent_query(**pos.asks, client_id="other-app"))
    assert other.status_code == 400


async def test_the_clients_control_checks_its_body(web: httpx.AsyncClient, pos: Pos) -> None:
    for body in ({}, {"client_id": "x"}, {"client_id": "", "client_secret": "s"},
                 {"client_id": "x", "client_secret": ""}, {**APP}):  # fmt: skip
        answer = await web.post("/_sandbox/oauth/clients", json=body)
        assert answer.status_code == 400, body


def test_the_default_app_is_the_gateways_development_default() -> None:
    """A gateway started without OAuth settings talks to a sandbox started without them."""
    defaults = Settings()
    assert oauth.DEFAULT_CLIENT_ID == defaults.kounta_client_id == APP_ID
    secret = defaults.kounta_client_secret.get_secret_value()
    assert secret == oauth.DEFAULT_CLIENT_SECRET == APP_SECRET


async def test_another_app_configured_at_startup_replaces_the_default(
    pos: Pos, clock: FakeClock
) -> None:
    async with serve(pos, clock, client_id="cid", client_secret="s3") as client:
        refused = await client.get(pos.consent, params=consent_query(**pos.asks))
        assert refused.status_code == 400
        back = await approve(client, pos, client_id="cid")
        default = await exchange(client, pos, back["code"])
        assert default.status_code == 401
        back = await approve(client, pos, client_id="cid")
        mine = await exchange(client, pos, back["code"], client_id="cid", client_secret="s3")
        assert mine.status_code == 200


# -- lost answers --------------------------------------------------------------------------------


async def test_a_refresh_whose_answer_is_lost_leaves_only_a_revoked_token(
    web: httpx.AsyncClient, pos: Pos
) -> None:
    pair = await connect(web, pos)
    armed = await web.post(
        "/_sandbox/faults", json={"status": 503, "after": True, "fail_next": 1, "path": pos.token}
    )
    assert armed.status_code == 200
    lost = await refresh(web, pos, pair["refresh_token"])
    assert lost.status_code == 503
    tokens = await live(web)
    assert pair["refresh_token"] not in tokens["refresh_tokens"]
    assert len(tokens["refresh_tokens"]) == (1 if pos is XSERIES else 2)  # the one never seen
    retry = await refresh(web, pos, pair["refresh_token"])
    assert (retry.status_code, retry.json()["error"]) == (400, "invalid_grant")


async def test_an_exchange_whose_answer_is_lost_cannot_be_repeated(
    web: httpx.AsyncClient, pos: Pos
) -> None:
    code = (await approve(web, pos))["code"]
    before = await live(web)
    await web.post(
        "/_sandbox/faults", json={"status": 502, "after": True, "fail_next": 1, "path": pos.token}
    )
    assert (await exchange(web, pos, code)).status_code == 502
    after = await live(web)
    assert len(after["refresh_tokens"]) == len(before["refresh_tokens"]) + 1
    retry = await exchange(web, pos, code)
    assert (retry.status_code, retry.json()["error"]) == (400, "invalid_grant")


# -- a full round over real HTTP -----------------------------------------------------------------


@pytest.fixture
def served(pos: Pos) -> Any:
    server = ServerThread(pos.create_app(token_lifetime_s=3600)).start()
    yield server
    server.stop()


def test_consent_code_token_api_and_refresh_over_http(served: ServerThread, pos: Pos) -> None:
    with httpx.Client(base_url=served.url, headers=pos.headers, follow_redirects=False) as http:
        page = http.get(pos.consent, params=consent_query(**pos.asks, state="round"))
        form = read_form(page.text)
        back = http.post(form.action, data=form.submission("approve"))
        assert back.status_code == 303
        assert back.headers["location"].startswith(f"{CALLBACK}?")
        params = redirect_params(back)
        assert params["state"] == "round"
        body = {"grant_type": "authorization_code", "code": params["code"],
                "redirect_uri": CALLBACK, **APP}  # fmt: skip
        pair = http.post(pos.token, data=body).json()
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        assert http.get(pos.probe, headers=bearer).status_code == 200
        rotate = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"], **APP}
        renewed = http.post(pos.token, data=rotate)
        assert renewed.status_code == 200
        again = http.post(pos.token, data=rotate)
        assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
        fresh = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
        assert http.get(pos.probe, headers=fresh).status_code == 200
