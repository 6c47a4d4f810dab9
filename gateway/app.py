"""The ASGI application: entry points mounted on one Starlette app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.api import connect, health, kounta, webhooks
from gateway.api.graphql.ide import assets_route
from gateway.api.graphql.schema import build_schema
from gateway.api.graphql.view import GraphQLEndpoint, GraphQLView
from gateway.api.middleware import BodyLimit, RequestContext
from gateway.observability import configure_logging
from gateway.runtime import Runtime
from gateway.services import recovery, subscriptions
from gateway.services.context import Services
from gateway.settings import Environment, Settings


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Starlette:
    """Build the app. With ``runtime`` the caller owns the resources (tests, the demo);
    without, the app builds them from settings and closes them on shutdown."""
    owned = runtime is None
    runtime = runtime or Runtime(settings or Settings())
    settings = runtime.settings
    configure_logging(settings.log_level, json=settings.log_json)
    services = Services(runtime)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Check every POS's webhooks idempotently, without holding up start-up.
        background = [asyncio.create_task(subscriptions.ensure_all(services))]
        stop = asyncio.Event()
        if settings.worker_in_process:  # off when a separate `gateway worker` runs
            background.append(
                asyncio.create_task(recovery.run(services, settings.worker_interval_s, stop))
            )
        # What start-up built (the schema, the app, every module) lives as long as the
        # process: frozen, the collector's full passes skip it and walk only what requests
        # made, which shortened the pauses that made the slowest answers (bench/README.md).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            stop.set()
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if owned:
                await runtime.aclose()

    graphql = GraphQLEndpoint(
        GraphQLView(
            build_schema(settings),
            services,
            ide=settings.environment is Environment.DEVELOPMENT,
        ),
        services,
    )
    routes: list[BaseRoute] = [
        *health.routes,
        Route("/graphql", graphql, methods=["GET", "POST"]),
        *([assets_route()] if graphql.view.graphql_ide else []),  # GraphiQL's scripts, styles
        *kounta.routes,
        *webhooks.routes,
        *connect.routes,
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestContext),
            Middleware(BodyLimit, max_bytes=settings.max_body_bytes, graphql_path="/graphql"),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.services = services
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
