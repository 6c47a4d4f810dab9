"""Health, readiness, metrics and the request plumbing every response goes through."""

from __future__ import annotations

import httpx
import pytest
from starlette.routing import Route

from gateway.app import create_app
from gateway.runtime import Runtime
from gateway.settings import Settings

UNREACHABLE = "sqlite+aiosqlite:////nonexistent-directory/gateway.db"


def client_for(runtime: Runtime) -> httpx.AsyncClient:
    app = create_app(runtime=runtime)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_alive_and_ready_on_each_backend(runtime: Runtime) -> None:
    async with client_for(runtime) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok"}}


async def test_not_ready_when_the_database_is_unreachable(settings: Settings) -> None:
    broken = Runtime(settings.model_copy(update={"database_url": UNREACHABLE}))
    try:
        async with client_for(broken) as client:
            ready = await client.get("/readyz")
    finally:
        await broken.aclose()
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unavailable")
    assert ready.json()["checks"]["cache"] == "ok"


async def test_every_response_has_a_request_id(runtime: Runtime) -> None:
    async with client_for(runtime) as client:
        echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        generated = await client.get("/healthz")
        forged = await client.get("/healthz", headers={"X-Request-ID": "bad id\n"})
    assert echoed.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32
    assert forged.headers["x-request-id"] != "bad id\n"


async def test_unknown_path_is_json_404(runtime: Runtime) -> None:
    async with client_for(runtime) as client:
        response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


async def test_a_crash_is_a_500_without_a_stack_trace(runtime: Runtime) -> None:
    app = create_app(runtime=runtime)

    async def boom(request: object) -> None:
        raise RuntimeError("secret internals")

    app.router.routes.append(Route("/boom", boom))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal error" and body["request_id"]
    assert "secret internals" not in response.text and "Traceback" not in response.text


async def test_metrics_count_requests_by_route(runtime: Runtime) -> None:
    async with client_for(runtime) as client:
        await client.get("/healthz")
        metrics = (await client.get("/metrics")).text
    assert 'gateway_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_health_routes_are_get_only(runtime: Runtime, path: str) -> None:
    async with client_for(runtime) as client:
        assert (await client.post(path)).status_code == 405
