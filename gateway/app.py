"""The ASGI application: entry points mounted on one Starlette app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from gateway.api import health
from gateway.api.middleware import RequestContext
from gateway.observability import configure_logging
from gateway.runtime import Runtime
from gateway.settings import Settings


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Starlette:
    """Build the app. With ``runtime`` the caller owns the resources (tests, the demo);
    without, the lifespan builds them from settings and closes them on shutdown."""
    settings = runtime.settings if runtime else (settings or Settings())
    configure_logging(settings.log_level, json=settings.log_json)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if runtime is not None:
            yield
            return
        owned = Runtime(settings)
        app.state.runtime = owned
        try:
            yield
        finally:
            await owned.aclose()

    routes: list[BaseRoute] = [*health.routes]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestContext)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    if runtime is not None:
        app.state.runtime = runtime
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
