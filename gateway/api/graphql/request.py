"""What a GraphQL POST body must be, said once, before Strawberry sees it.

Strawberry reads any JSON value as the request and reaches into it as an object, so a body
of ``null``, ``42`` or ``"x"`` became an AttributeError and a 500. Here the body is read by
the gateway's JSON reader (its depth bounded) and each member is checked for its type, so
a malformed request is a 400 that says which member is wrong.
"""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from strawberry.http import GraphQLRequestData

from gateway import jsonx

EXAMPLE = '{"query": "{ merchant { name } }", "variables": {}}'


def read_json(body: bytes | str, max_depth: int) -> Any:
    try:
        return jsonx.loads(body, max_depth=max_depth)
    except jsonx.JSONError as error:
        raise HTTPException(400, str(error)) from None


def request_data(body: object) -> GraphQLRequestData:
    """The request in a POST body already read as JSON; a 400 naming what is wrong."""
    if not isinstance(body, dict):
        raise HTTPException(400, f"the body must be a JSON object, like {EXAMPLE}")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise HTTPException(400, "query must be a string holding the GraphQL document")
    variables = _member(body, "variables", dict, "an object")
    operation_name = _member(body, "operationName", str, "a string")
    extensions = _member(body, "extensions", dict, "an object")
    return GraphQLRequestData(
        query=query, variables=variables, operation_name=operation_name, extensions=extensions
    )


def _member(body: dict[str, Any], name: str, kind: type, described: str) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise HTTPException(400, f"{name} must be {described} (or null)")
    return value
