"""The baseline: a bare Strawberry ``{ hello }`` on Starlette, served as ``gateway serve`` is.

Same server, same settings (``uvicorn.run`` with its defaults for loop and HTTP parser, no
access log: gateway/cli.py ``serve``), the view mounted the way gateway/app.py mounts its
own, no IDE as in production: what the gateway costs above this is the gateway's own.

    python -m bench.hello --port 8000
"""

from __future__ import annotations

import argparse

import strawberry
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"


def create_app() -> Starlette:
    view: GraphQL[None, None] = GraphQL(strawberry.Schema(Query), graphql_ide=None)
    return Starlette(routes=[Route("/graphql", view, methods=["GET", "POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the bare { hello } app.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, access_log=False)


if __name__ == "__main__":
    main()
