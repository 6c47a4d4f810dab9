"""The Kounta URLs' published contract: an OpenAPI 3.1 document, written to
``schema/kounta-adapters.openapi.json`` by ``gateway export-schema`` and served at
``GET /kounta/openapi.json``.

The response schemas are generated from the models the adapters build their answers from
(``gateway/api/kounta_models.py``); the paths and parameters below are the routes in
``gateway/api/kounta.py``. Tests validate the adapters' real answers against this document
and fail when the file in ``schema/`` is not what this module writes.

``/kounta/openapi.json`` cannot be taken for an add-on URL: those are
``/kounta/{token}/<name>``, two segments after ``/kounta/``; and the log redaction of the
add-on token (``gateway/observability.py``) only masks a segment followed by another, so
this path is logged as it is.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.api.kounta_models import (
    KountaAnswer,
    KountaError,
    KountaMember,
    KountaMembers,
    RedeemDone,
    RedeemRefused,
)
from gateway.domain.text import MAX_ID_LENGTH, MAX_KEYWORD_LENGTH

PATH = "/kounta/openapi.json"
CONTRACT_VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(
    name: str, description: str, *, required: bool = False, max_length: int = MAX_ID_LENGTH
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string", "maxLength": max_length},
    }


_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The add-on token configured on the gateway (GATEWAY_KOUNTA_ADDON_TOKEN).",
    "schema": {"type": "string"},
}
_COMPANY = _query("company_id", "The Kounta company that installed the add-on.", required=True)
_SITE = _query("site_id", "The site the till is at (checked, not used).")
_ORDER = _query(
    "order_id", "The order being paid; Kounta sends a placeholder, echoed in redeem_url."
)

_ERRORS = {
    "400": _json(_ref("KountaError"), "A parameter is missing or not acceptable."),
    "401": _json(_ref("KountaError"), "The add-on token is wrong."),
    "404": _json(
        _ref("KountaError"), "The company has not installed the add-on, or no such member."
    ),
    "413": _json(_ref("KountaError"), "The request body is too large."),
    "503": _json(
        _ref("KountaError"),
        "The add-on is not configured here, or the POS is unavailable: try again shortly.",
    ),
}


def _paths() -> dict[str, Any]:
    redeem_answer = _json(
        _ref("RedeemAnswer"),
        "Always 200 once the offer is read: success, or a refusal to show the cashier.",
    )
    unreadable = _json(_ref("RedeemRefused"), "A POST body that cannot be read.")
    redeem_fields = {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "maxLength": MAX_ID_LENGTH},
            "quantity": {"type": ["string", "number"], "description": "For a variable reward."},
        },
    }
    offer = {
        "name": "offer",
        "in": "path",
        "required": True,
        "description": "The signed offer from a reward's redeem_url.",
        "schema": {"type": "string"},
    }
    quantity = _query("quantity", "For a variable reward: the points to spend (two places).")
    return {
        "/kounta/{token}/customer-search": {
            "get": {
                "operationId": "customerSearch",
                "summary": "Members matching a name, email or phone number.",
                "parameters": [
                    _TOKEN,
                    _query("keyword", "What the cashier typed.", max_length=MAX_KEYWORD_LENGTH),
                    _COMPANY,
                    _SITE,
                    _ORDER,
                ],
                "responses": {
                    "200": _json(_ref("KountaMembers"), "The members found, keyed by id."),
                    **_ERRORS,
                },
            }
        },
        "/kounta/{token}/reward-lookup": {
            "get": {
                "operationId": "rewardLookup",
                "summary": "One member, with the rewards they can redeem on this order.",
                "parameters": [
                    _TOKEN,
                    _query("customer_id", "Kounta's customer id."),
                    _query("reference_id", "The member id the search answered with."),
                    _COMPANY,
                    _SITE,
                    _ORDER,
                ],
                "responses": {"200": _json(_ref("KountaMember"), "The member."), **_ERRORS},
            }
        },
        "/kounta/redeem/{offer}": {
            "get": {
                "operationId": "redeemGet",
                "summary": "Redeem an offer on an order (Kounta's redeem_url).",
                "parameters": [offer, _ORDER, quantity],
                "responses": {"200": redeem_answer, "413": _ERRORS["413"]},
            },
            "post": {
                "operationId": "redeemPost",
                "summary": "The same, with the parameters in a form or JSON body as well.",
                "parameters": [offer, _ORDER, quantity],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/x-www-form-urlencoded": {"schema": redeem_fields},
                        "application/json": {"schema": redeem_fields},
                    },
                },
                "responses": {
                    "200": redeem_answer,
                    "400": unreadable,
                    "413": _ERRORS["413"],
                },
            },
        },
    }


@cache
def document() -> dict[str, Any]:
    models: list[type[KountaAnswer]] = [
        KountaMembers,
        KountaMember,
        RedeemDone,
        RedeemRefused,
        KountaError,
    ]
    _, generated = models_json_schema(
        [(model, "serialization") for model in models], ref_template=_REF
    )
    schemas = dict(sorted(generated["$defs"].items()))
    schemas["RedeemAnswer"] = {"oneOf": [_ref("RedeemDone"), _ref("RedeemRefused")]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Loyalty gateway: Kounta rewards-provider URLs",
            "version": CONTRACT_VERSION,
            "description": (
                'The URLs Kounta\'s POS calls (README, "Kounta"). Generated by '
                "`gateway export-schema`; what is inferred of Kounta: docs/pos-contracts.md."
            ),
        },
        "paths": _paths(),
        "components": {"schemas": schemas},
    }


def document_text() -> str:
    """The file ``gateway export-schema`` writes: stable, so a stale copy is a diff."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
