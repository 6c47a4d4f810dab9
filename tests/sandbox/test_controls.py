"""The sandbox controls: latency, injected faults, the rate budget, counters and reset."""

from __future__ import annotations

import json
import time
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from gateway.sandbox.controls import ControlsMiddleware, RateLimit, SandboxControls
from gateway.sandbox.xseries import DEMO_FIXTURES, create_app
from tests.sandbox.conftest import START, TOKEN, FakeClock, RecordingSleep

JOHNNY_SALE = "3b0e8c1a-0000-4000-8000-00000000a001"
TONY_SALE = "3b0e8c1a-0000-4000-8000-00000000a002"
TONY = "06e35f89-3c6d-11e9-f5ed-8a1a7a7e2b01"


def http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


async def arm(client: httpx.AsyncClient, **faults: Any) -> dict[str, Any]:
    response = await client.post("/_sandbox/faults", json=faults)
    assert response.status_code == 200, response.text
    armed: dict[str, Any] = response.json()
    return armed


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    result: dict[str, Any] = (await client.get("/_sandbox/stats")).json()
    return result


# -- latency -------------------------------------------------------------------------------------


async def test_latency_is_the_cli_latency_plus_the_fault_latency(
    clock: FakeClock, sleeps: RecordingSleep
) -> None:
    app = create_app(token=TOKEN, latency_ms=100, clock=clock, sleep=sleeps)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", headers=headers
    ) as client:
        await client.get("/api/config")
        await arm(client, latency_ms=150, path="/api/customers")
        await client.get("/api/customers")
        await client.get("/api/config")
        await client.get("/_sandbox/stats")
    assert sleeps.calls == [0.1, 0.25, 0.1]


async def test_no_latency_means_no_sleep(client: httpx.AsyncClient, sleeps: RecordingSleep) -> None:
    await client.get("/api/config")
    assert sleeps.calls == []


async def test_latency_really_waits_with_the_default_sleep() -> None:
    app = create_app(latency_ms=30)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        started = time.perf_counter()
        await client.get("/api/config", headers={"Authorization": "Bearer x"})
        assert time.perf_counter() - started >= 0.03


# -- status faults -------------------------------------------------------------------------------


async def test_fail_next_fails_only_matching_requests_then_stops(
    client: httpx.AsyncClient,
) -> None:
    armed = await arm(client, status=503, fail_next=2, method="post", path="/api/register_sales")
    assert (armed["status"], armed["fail_next"], armed["method"]) == (503, 2, "POST")
    assert (await client.get("/api/register_sales")).status_code == 200
    assert (await client.post("/api/customers", json={"first_name": "A"})).status_code == 200
    for _ in range(2):
        failed = await client.post("/api/register_sales", json={})
        assert failed.status_code == 503
        assert failed.json()["error"] == "Service Unavailable"
    assert (await client.post("/api/register_sales", json={})).status_code == 400
    assert (await client.get("/_sandbox/faults")).json()["fail_next"] == 0


async def test_a_status_without_fail_next_fails_until_cleared(client: httpx.AsyncClient) -> None:
    await arm(client, status=500)
    for _ in range(3):
        assert (await client.get("/api/config")).status_code == 500
    assert (await client.get("/_sandbox/stats")).status_code == 200
    cleared = await client.delete("/_sandbox/faults")
    assert cleared.json()["status"] is None
    assert (await client.get("/api/config")).status_code == 200


async def test_posting_faults_replaces_the_previous_ones(client: httpx.AsyncClient) -> None:
    await arm(client, status=500)
    replaced = await arm(client, latency_ms=5)
    assert (replaced["status"], replaced["latency_ms"]) == (None, 5)
    assert (await client.get("/api/config")).status_code == 200


async def test_a_429_fault_says_when_to_retry(client: httpx.AsyncClient, clock: FakeClock) -> None:
    clock.advance(0.4)
    await arm(client, status=429, fail_next=1, retry_after_s=30)
    response = await client.get("/api/config")
    assert response.status_code == 429
    assert response.json() == {"error": "Too Many Requests", "message": "Rate limiting enforced"}
    assert response.headers["Retry-After"] == http_date(START + 31)
    assert parsedate_to_datetime(response.headers["Retry-After"]).timestamp() == START + 31
    assert response.headers["X-RateLimit-Limit"] == "350"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert (await client.get("/api/config")).status_code == 200


async def test_an_after_fault_applies_the_write_and_loses_the_answer(
    client: httpx.AsyncClient,
) -> None:
    await arm(client, status=503, fail_next=1, method="POST", after=True)
    customer = {"first_name": "Happy", "last_name": "Hogan"}
    lost = await client.post("/api/customers", json=customer)
    assert lost.status_code == 503
    found = (await client.get("/api/customers", params={"code": "HAPPYHOGAN"})).json()
    assert [c["first_name"] for c in found["customers"]] == ["Happy"]
    assert (await stats(client))["responses"]["POST /api/customers 503"] == 1
    assert (await client.post("/api/customers", json={"first_name": "Next"})).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"status": "503"}',
        b'{"status": 200}',
        b'{"status": 503, "fail_next": -1}',
        b'{"fail_next": 2}',
        b'{"latency_ms": 1.5}',
        b'{"latency_ms": true}',
        b'{"path": "api"}',
        b'{"rate_limit": {"limit": 5}}',
        b'{"rate_limit": {"limit": 5, "window_s": 0}}',
        b'{"stauts": 503}',
        b'{"after": true}',
        b'{"status": 503, "after": "yes"}',
        b'{"late_ms": -1}',
        b'{"late_ms": 0.5}',
        b'{"late_ms": "800"}',
        b'{"late_ms": 800, "late_next": 0}',
        b'{"late_ms": 800, "late_next": false}',
        b'{"late_next": 1}',
        b'{"late_ms": 0, "late_next": 1}',
        b'{"late_ms": 800, "late_nxt": 1}',
    ],
)
async def test_malformed_faults_are_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/_sandbox/faults", content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid faults"
    assert (await client.get("/_sandbox/faults")).json()["status"] is None


# -- late writes ---------------------------------------------------------------------------------


async def test_late_faults_are_shown_and_off_by_default(client: httpx.AsyncClient) -> None:
    defaults = (await client.get("/_sandbox/faults")).json()
    assert (defaults["late_ms"], defaults["late_next"]) == (0, None)
    armed = await arm(client, late_ms=800, late_next=2, method="post", path="/api/customers")
    assert (armed["late_ms"], armed["late_next"], armed["method"]) == (800, 2, "POST")
    assert (await client.get("/_sandbox/faults")).json() == armed


async def test_a_late_write_is_held_then_applied_and_reads_are_not_held(
    client: httpx.AsyncClient, sleeps: RecordingSleep
) -> None:
    await arm(client, late_ms=800)
    assert (await client.get("/api/customers")).status_code == 200
    assert sleeps.calls == []
    created = await client.post("/api/customers", json={"first_name": "Late", "last_name": "Comer"})
    assert created.status_code == 200
    assert sleeps.calls == [0.8]
    found = (await client.get("/api/customers", params={"code": "LATECOMER"})).json()
    assert [c["first_name"] for c in found["customers"]] == ["Late"]
    assert sleeps.calls == [0.8]
    assert (await stats(client))["requests"]["POST /api/customers"] == 1


async def test_late_next_holds_that_many_matching_writes_then_stops(
    client: httpx.AsyncClient, sleeps: RecordingSleep
) -> None:
    await arm(client, late_ms=500, late_next=2, method="POST", path="/api/customers")
    await client.post("/api/register_sales", json={})
    await client.put("/api/customers", json={})
    assert sleeps.calls == []
    for name in ("A", "B", "C"):
        await client.post("/api/customers", json={"first_name": name})
    assert sleeps.calls == [0.5, 0.5]
    assert (await client.get("/_sandbox/faults")).json()["late_next"] == 0


async def test_late_is_held_after_the_latency(clock: FakeClock, sleeps: RecordingSleep) -> None:
    app = create_app(token=TOKEN, latency_ms=100, clock=clock, sleep=sleeps)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox", headers=headers
    ) as client:
        await arm(client, latency_ms=50, late_ms=800)
        await client.get("/api/config")
        await client.post("/api/customers", json={"first_name": "Slow"})
    assert sleeps.calls == [0.15, 0.15, 0.8]


# -- a client that goes away ---------------------------------------------------------------------


class Departing:
    """The server's side of one POST whose client leaves when the sandbox first sleeps, or
    after its last chunk when the body is not ``whole``: from then on, as with uvicorn,
    receive() only answers ``http.disconnect``."""

    def __init__(self, chunks: list[bytes], *, whole: bool = True) -> None:
        self.chunks = chunks
        self.whole = whole
        self.gone = False
        self.sent: list[Message] = []

    async def sleep(self, seconds: float) -> None:
        self.gone = True

    async def receive(self) -> Message:
        if self.gone or not self.chunks:
            return {"type": "http.disconnect"}
        body = self.chunks.pop(0)
        more_body = bool(self.chunks) or not self.whole
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def post(self, app: Starlette, path: str) -> None:
        headers = [
            (b"host", b"sandbox"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"content-type", b"application/json"),
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("sandbox", 80),
        }
        await app(scope, self.receive, self.send)


async def test_a_client_leaving_during_the_latency_does_not_cancel_its_write(
    clock: FakeClock,
) -> None:
    server = Departing([b'{"first_name": "Gone",', b' "last_name": "Away"}'])
    app = create_app(token=TOKEN, latency_ms=100, clock=clock, sleep=server.sleep)
    await server.post(app, "/api/customers")
    assert server.gone
    assert server.sent[0]["status"] == 200  # answered to nobody, harmlessly
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        assert (await stats(client))["responses"] == {"POST /api/customers 200": 1}
        found = (await client.get("/api/customers", params={"code": "GONEAWAY"})).json()
        assert [c["first_name"] for c in found["customers"]] == ["Gone"]


async def test_a_client_leaving_mid_body_sent_no_request(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """A server cannot act on half a body: nothing is applied and nothing is answered."""
    server = Departing([b'{"first_name": "Half",'], whole=False)
    await server.post(app, "/api/customers")
    assert server.sent == []
    assert (await client.get("/api/customers")).json()["pagination"]["results"] == 4
    assert (await stats(client))["requests"] == {"POST /api/customers": 1, "GET /api/customers": 1}


# -- the rate budget -----------------------------------------------------------------------------


async def test_every_api_response_carries_the_default_budget(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/config")
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == (
        "350",
        "349",
    )
    unauthorised = await client.get("/api/config", headers={"Authorization": "Bearer wrong"})
    assert unauthorised.status_code == 401
    assert unauthorised.headers["X-RateLimit-Remaining"] == "348"
    missing = await client.get("/api/none")
    assert missing.headers["X-RateLimit-Remaining"] == "347"
    assert "X-RateLimit-Limit" not in (await client.get("/_sandbox/stats")).headers


async def test_the_default_budget_follows_the_number_of_registers(
    client: httpx.AsyncClient,
) -> None:
    fixtures = json.loads(DEMO_FIXTURES.read_text())
    second = {**fixtures["registers"][0], "id": "0adfd74a-153e-11e9-fa42-67b5781c0002"}
    fixtures["registers"].append(second)
    await client.post("/_sandbox/reset", json=fixtures)
    assert (await client.get("/api/config")).headers["X-RateLimit-Limit"] == "650"


async def test_over_budget_is_429_until_the_window_renews(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.advance(0.25)
    await arm(client, rate_limit={"limit": 3, "window_s": 60})
    remaining = []
    for _ in range(3):
        response = await client.get("/api/config")
        assert response.status_code == 200
        remaining.append(response.headers["X-RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    clock.advance(30)
    limited = await client.get("/api/config")
    assert limited.status_code == 429
    assert limited.json() == {"error": "Too Many Requests", "message": "Rate limiting enforced"}
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    retry_at = parsedate_to_datetime(limited.headers["Retry-After"]).timestamp()
    assert retry_at == START + 61  # the window ends at START + 60.25: rounded up
    clock.now = retry_at
    renewed = await client.get("/api/config")
    assert renewed.status_code == 200
    assert renewed.headers["X-RateLimit-Remaining"] == "2"


async def test_every_answer_says_when_the_window_renews(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """``X-RateLimit-Reset``: the epoch second, rounded up, at which the window ends (as
    X-Series' token endpoint says it); a 429 says the same second as its Retry-After."""
    clock.advance(0.25)
    await arm(client, rate_limit={"limit": 2, "window_s": 60})
    first = await client.get("/api/config")
    assert first.headers["X-RateLimit-Reset"] == str(int(START + 61))
    clock.advance(10)
    assert (await client.get("/api/none")).headers["X-RateLimit-Reset"] == str(int(START + 61))
    limited = await client.get("/api/config")
    assert limited.status_code == 429
    assert limited.headers["X-RateLimit-Reset"] == str(int(START + 61))
    retry_at = parsedate_to_datetime(limited.headers["Retry-After"]).timestamp()
    assert retry_at == START + 61
    clock.now = START + 61
    renewed = await client.get("/api/config")
    assert renewed.headers["X-RateLimit-Reset"] == str(int(START + 121))


async def test_a_429_fault_says_the_window_renews_when_it_says_to_retry(
    client: httpx.AsyncClient,
) -> None:
    await arm(client, status=429, fail_next=1, retry_after_s=30)
    response = await client.get("/api/config")
    retry_at = parsedate_to_datetime(response.headers["Retry-After"]).timestamp()
    assert response.headers["X-RateLimit-Reset"] == str(int(retry_at))


async def test_clearing_the_rate_limit_fault_restores_the_default_budget(
    client: httpx.AsyncClient,
) -> None:
    await arm(client, rate_limit={"limit": 1, "window_s": 60})
    await client.get("/api/config")
    assert (await client.get("/api/config")).status_code == 429
    await client.delete("/_sandbox/faults")
    response = await client.get("/api/config")
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "350"


async def test_faulted_requests_do_not_spend_the_budget(client: httpx.AsyncClient) -> None:
    await arm(client, status=503, fail_next=2, rate_limit={"limit": 1, "window_s": 60})
    assert (await client.get("/api/config")).status_code == 503
    assert (await client.get("/api/config")).status_code == 503
    assert (await client.get("/api/config")).status_code == 200


# -- counters ------------------------------------------------------------------------------------


async def test_stats_count_by_route_template_including_refused_requests(
    client: httpx.AsyncClient,
) -> None:
    await client.get(f"/api/register_sales/{JOHNNY_SALE}")
    await client.get(f"/api/register_sales/{TONY_SALE}")
    await client.get("/api/register_sales/unknown")
    await client.get("/api/config")
    await arm(client, status=503, fail_next=1, path="/api/config")
    await client.get("/api/config")
    await arm(client, rate_limit={"limit": 0, "window_s": 60})
    await client.post("/api/register_sales", json={})
    await client.delete("/api/config")
    assert await stats(client) == {
        "total": 7,
        "requests": {
            "GET /api/register_sales/{id}": 3,
            "GET /api/config": 2,
            "POST /api/register_sales": 1,
            "DELETE /api/config": 1,
        },
        "responses": {
            "GET /api/register_sales/{id} 200": 2,
            "GET /api/register_sales/{id} 404": 1,
            "GET /api/config 200": 1,
            "GET /api/config 503": 1,
            "POST /api/register_sales 429": 1,
            "DELETE /api/config 429": 1,
        },
    }


async def test_stats_can_be_zeroed_keeping_the_state_and_faults(
    client: httpx.AsyncClient,
) -> None:
    body = {"session_id": "6f1c1f0e-5b7a-4d0e-9a43-2d3c8f6a9b11",
            "adjustments": [{"customer_id": TONY, "credit": 5}]}  # fmt: skip
    assert (await client.post("/api/2026-07/loyalty/adjustments/bulk", json=body)).is_success
    await arm(client, status=503, fail_next=1, path="/api/config")
    cleared = await client.delete("/_sandbox/stats")
    assert cleared.json() == {"total": 0, "requests": {}, "responses": {}}
    assert (await client.get("/api/config")).status_code == 503  # the fault is still armed
    customer = (await client.get("/api/customers", params={"id": TONY})).json()["customers"][0]
    assert customer["loyalty_balance"] == "55.00000"  # the state is kept
    assert (await stats(client))["requests"] == {"GET /api/config": 1, "GET /api/customers": 1}


# -- reset ---------------------------------------------------------------------------------------


async def test_reset_restores_the_startup_fixtures(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/customers", json={"first_name": "Temp"})
    adjust = {
        "session_id": "6f1c1f0e-5b7a-4d0e-9a43-2d3c8f6a9b10",
        "adjustments": [{"customer_id": TONY, "credit": 5}],
    }
    await client.post("/api/2026-07/loyalty/adjustments/bulk", json=adjust)
    await arm(client, status=500, rate_limit={"limit": 1, "window_s": 60})
    response = await client.post("/_sandbox/reset")
    assert response.status_code == 200
    assert await stats(client) == {"total": 0, "requests": {}, "responses": {}}
    assert (await client.get("/_sandbox/faults")).json()["status"] is None
    customers = (await client.get("/api/customers")).json()["customers"]
    assert created.json()["customer"]["id"] not in {c["id"] for c in customers}
    tony = next(c for c in customers if c["id"] == TONY)
    assert tony["loyalty_balance"] == "50.00000"
    replay = await client.post("/api/2026-07/loyalty/adjustments/bulk", json=adjust)
    assert replay.json()["applied"] == [{"customer_id": TONY, "balance": 55}]
    assert replay.headers["X-RateLimit-Remaining"] == "348"


async def test_reset_with_a_body_loads_those_fixtures(client: httpx.AsyncClient) -> None:
    fixtures = json.loads(DEMO_FIXTURES.read_text())
    fixtures["config"]["display_retail_price_tax_inclusive"] = "1"
    fixtures["customers"] = fixtures["customers"][:2]
    assert (await client.post("/_sandbox/reset", json=fixtures)).json() == {"reset": "body"}
    assert (await client.get("/api/config")).json()["config"][
        "display_retail_price_tax_inclusive"
    ] == "1"
    assert (await client.get("/api/customers")).json()["pagination"]["results"] == 2
    await client.post("/_sandbox/reset")
    assert (await client.get("/api/customers")).json()["pagination"]["results"] == 4


@pytest.mark.parametrize(
    "body", [b"{", b"[]", b'{"planets": []}', b'{"register_sales": [{"id": "s"}]}']
)
async def test_reset_with_bad_fixtures_is_400_and_changes_nothing(
    client: httpx.AsyncClient, body: bytes
) -> None:
    await client.get("/api/config")
    response = await client.post("/_sandbox/reset", content=body)
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid fixtures"
    assert (await stats(client))["total"] == 1
    assert (await client.get("/api/customers")).json()["pagination"]["results"] == 4


# -- POS-neutral ---------------------------------------------------------------------------------


async def test_the_controls_front_any_sandbox() -> None:
    """A Kounta sandbox will reuse the controls: nothing in them knows X-Series."""
    clock, resets = FakeClock(), list[Any]()

    async def order(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["order_id"]})

    routes = [Route("/v1/orders/{order_id}", order)]
    controls = SandboxControls(
        routes=routes,
        default_rate_limit=lambda: RateLimit(2, 60),
        reset=resets.append,
        clock=clock,
    )
    app = Starlette(
        routes=[*controls.admin_routes(), *routes],
        middleware=[Middleware(ControlsMiddleware, controls=controls)],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kounta") as client:
        assert (await client.get("/v1/orders/1")).json() == {"id": "1"}
        assert (await client.get("/v1/orders/2")).headers["X-RateLimit-Remaining"] == "0"
        assert (await client.get("/v1/orders/3")).status_code == 429
        assert (await stats(client))["requests"] == {"GET /v1/orders/{order_id}": 3}
        await client.post("/_sandbox/reset", json={"company": {}})
    assert resets == [{"company": {}}]
