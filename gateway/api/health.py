"""Liveness, readiness and metrics for the platform and the on-call engineer."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.metrics import REGISTRY
from gateway.runtime import Runtime

READY_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    checks = {"database": runtime.db.ping(), "cache": runtime.cache.ping()}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, READY_TIMEOUT_S)
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; say which and why
            results[name] = f"unavailable: {type(exc).__name__}"
    ready = all(value == "ok" for value in results.values())
    body = {"status": "ready" if ready else "not ready", "checks": results}
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
