"""``/graphql``: the API key in front, Strawberry behind, orjson on the way out."""

from __future__ import annotations

from typing import Any

import orjson
import strawberry
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type

from gateway.api.deadlines import answer_within
from gateway.api.graphql.context import Context
from gateway.api.graphql.ide import graphiql_html
from gateway.api.graphql.request import read_json, request_data
from gateway.domain.errors import Unavailable
from gateway.services.auth import authenticate, bearer_token
from gateway.services.context import Services


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, schema: strawberry.Schema, services: Services, *, ide: bool) -> None:
        super().__init__(schema, graphql_ide="graphiql" if ide else None)
        self.services = services
        self.max_json_depth = services.runtime.settings.max_json_depth
        self._ide_html = graphiql_html() if ide else ""

    @property
    def graphql_ide_html(self) -> str:
        """Strawberry's GraphiQL page on the gateway's own copies of its assets: no CDN."""
        return self._ide_html

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry says a malformed request in plain text; a GraphQL client reads JSON."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope, receive=receive))
        except HTTPException as refused:
            response = request_error(refused.reason, refused.status_code)
        await response(scope, receive, send)

    def parse_json(self, data: str | bytes) -> Any:
        """Every JSON Strawberry reads (a body, GET's ``variables``) through our reader."""
        return read_json(data, self.max_json_depth)

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        content_type, _ = parse_content_type(request.content_type or "")
        if request.method == "POST" and "application/json" in content_type:
            return request_data(self.parse_json(await request.get_body()))
        return await super().parse_http_body(request)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        merchant = request.scope["state"]["merchant"]
        return Context(scope=self.services.scope(merchant))

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


class GraphQLEndpoint:
    """Requires ``Authorization: Bearer <api key>``; answers 401 JSON without a valid one.

    The GraphiQL page itself (a browser GET asking for HTML, development only) is served
    without a key: the key goes into its headers panel.
    """

    def __init__(self, view: GraphQLView, services: Services) -> None:
        self.view = view
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await JSONResponse({"error": "websockets are not served"}, 400)(scope, receive, send)
            return
        request = Request(scope)
        if self._wants_ide(request):
            await HTMLResponse(self.view.graphql_ide_html)(scope, receive, send)
            return
        token = bearer_token(request.headers.get("authorization"))
        merchant = await authenticate(self.services, token) if token else None
        if merchant is None:
            await _unauthorized(token is not None)(scope, receive, send)
            return
        scope.setdefault("state", {})["merchant"] = merchant
        seconds = self.services.runtime.settings.graphql_deadline_s
        try:
            await answer_within(seconds, self.view(scope, receive, send))
        except Unavailable as late:
            body = {"data": None, "errors": [{"message": late.message,
                    "extensions": {"code": late.code.value}}]}  # fmt: skip
            await JSONResponse(body)(scope, receive, send)

    def _wants_ide(self, request: Request) -> bool:
        return (
            self.view.graphql_ide is not None
            and request.method == "GET"
            and "text/html" in request.headers.get("accept", "")
            and "query" not in request.query_params
        )


def request_error(message: str, status: int) -> Response:
    """A request refused before any operation ran, shaped as GraphQL errors."""
    return JSONResponse({"errors": [{"message": message}]}, status_code=status)


def _unauthorized(presented: bool) -> Response:
    message = (
        "the API key is not valid (revoked or unknown)"
        if presented
        else "send your API key as 'Authorization: Bearer <key>'"
    )
    body: dict[str, Any] = {
        "errors": [{"message": message, "extensions": {"code": "UNAUTHORIZED"}}]
    }
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
