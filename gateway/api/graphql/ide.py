"""GraphiQL without a CDN: Strawberry's own page, its scripts and styles served by the gateway.

Strawberry's GraphiQL page loads React, GraphiQL and its explorer plugin from unpkg.com. A
merchant's or a developer's network may block CDNs, and a page that depends on one cannot
be tested offline; so the exact files that page references (same versions, same bytes, its
integrity hashes still checked by the browser) are vendored under
``gateway/api/static/graphiql/`` at unpkg's own paths, and the page is Strawberry's with the
CDN's address swapped for ours. Strawberry's page logic (fetcher, headers editor, explorer)
stays Strawberry's. How to refresh the files after a Strawberry upgrade:
``gateway/api/static/graphiql/README.md``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from strawberry.http.ides import get_graphql_ide_html

ASSETS = Path(__file__).resolve().parents[1] / "static" / "graphiql"
ASSETS_PATH = "/graphql/static"
CDN = "https://unpkg.com/"


def graphiql_html() -> str:
    """Strawberry's GraphiQL page, every asset taken from the gateway."""
    return get_graphql_ide_html(graphql_ide="graphiql").replace(CDN, f"{ASSETS_PATH}/")


def assets_route() -> Mount:
    return Mount(ASSETS_PATH, app=StaticFiles(directory=ASSETS), name="graphiql-assets")
