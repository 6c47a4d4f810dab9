"""A stateful simulator of the Kounta REST API (``https://api.kounta.com/v1``).

It plays the POS for our own Kounta client: it keeps one company's customers, orders, payments
and webhooks, speaks OAuth2 (a consent page at ``/authorize``, codes and single-use refresh
tokens at ``/v1/token``: ``gateway.sandbox.oauth``), and validates requests at least as
strictly as the real API, so that a client bug shows up here and not in a café. It shares no
code with the gateway's client on purpose: a misreading of the API must not be copied into both
sides of the test.

Orders look as Kounta's documentation shows them: lines with their ``id``, ``number`` and
``modifiers``, payments with their ``id`` and ``method``. A PUT of lines must name every line
of the order by its ``id`` and keep its ``number`` and ``modifiers``. A fixture order may
carry an order-wide ``price_variation``, and ``omit_fields`` (``total``, ``total_tax``,
``paid``, ``price_variation``) to be served without them, as the documentation's example is.

The till's side of an order is played by test controls, each followed by the webhooks the
real POS would send (``TILL_TOPICS``): ``POST /_sandbox/orders/{id}/complete``, ``/refund`` (a
negative payment, as the API takes it), ``/reject`` and ``/delete``, each with
``{"deliveries": N, "concurrent": bool}`` (docs/pos-contracts.md, "Refunds, voids, rejects,
deletes"). A deleted order is listed at ``/orders/deleted`` only.

Money is ``Decimal`` from the request bytes to the response bytes (``parse_float=Decimal`` in,
``common.json_default`` out), because a float anywhere would make order totals drift. Kounta's
ids are integers, and so are ours.
"""

from __future__ import annotations

import asyncio
import math
import operator
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.sandbox import common
from gateway.sandbox.common import ZERO, ApiResponse, FixtureError, decimal_sum
from gateway.sandbox.controls import ControlsMiddleware, RateLimit, SandboxControls
from gateway.sandbox.deliveries import Deliver, deliver_over_http
from gateway.sandbox.oauth import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    AuthorizationServer,
    Issued,
)

__all__ = [
    "DEMO_FIXTURES",
    "Deliver",
    "FixtureError",
    "create_app",
    "deliver_over_http",
    "load_fixtures",
]

DEMO_FIXTURES = Path(__file__).parent / "fixtures" / "kounta_demo.json"

# Kounta publishes no limit; this is generous enough for tests and still catches a runaway loop.
DEFAULT_RATE_LIMIT = RateLimit(300, 60)
# An access token's life: the token answer in client code says 3600 (inferred).
TOKEN_LIFETIME_S = 3600
PAGE_SIZE = 25
FIXTURE_KEYS = frozenset(
    {"company", "sites", "customers", "orders", "payment_methods", "webhooks", "tokens"}
)
STATUSES = ("SUBMITTED", "ON_HOLD", "PENDING", "ACCEPTED", "REJECTED", "COMPLETE")
CREATE_STATUSES = ("SUBMITTED", "ON_HOLD", "PENDING")
CLOSED = {"COMPLETE": "Order is complete", "REJECTED": "Order is rejected"}
TOPICS = (
    "orders/completed",
    "orders/created",
    "orders/updated",
    "orders/deleted",
    "customers/created",
    "customers/updated",
)
# What each act of the till (``/_sandbox/orders/{id}/{act}``) sends, to every webhook of each
# topic, in this order. Only ``orders/completed`` is documented (client code registers it);
# the rest are inferred from the ``{resource}/{created|updated}`` pattern of the documented
# topics and the API's ``/orders/deleted`` list: a refund or a reject changes an order, so it
# is ``orders/updated``; completing one is an update too; deleting one is ``orders/deleted``
# (docs/pos-contracts.md, "Refunds, voids, rejects, deletes").
TILL_TOPICS: dict[str, tuple[str, ...]] = {
    "complete": ("orders/completed", "orders/updated"),
    "refund": ("orders/updated",),
    "reject": ("orders/updated",),
    "delete": ("orders/deleted",),
}
DELIVERY_OPTIONS = ("deliveries", "concurrent")
# The date filters of an order list: ``created_`` is documented (with ``lt|lte|gt|gte``);
# ``updated_`` is inferred, as a poller needs it to find an old order refunded today.
ORDER_DATE_FIELDS = ("created", "updated")
ORDER_DATE_OPS: dict[str, Callable[[datetime, datetime], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
# Documented order filters the sandbox does not play: refused rather than ignored, since a
# list that ignores its filter answers with every order.
ORDER_FILTERS_NOT_SIMULATED = tuple(f"value_{op}" for op in ORDER_DATE_OPS)
CUSTOMER_TEXT = ("first_name", "last_name", "phone", "email", "mobile", "image", "reference_id")
CUSTOMER_WRITABLE = frozenset(
    {*CUSTOMER_TEXT, "tags", "primary_address", "shipping_address", "accepts_marketing"}
)
LINE_KEYS = frozenset(
    {
        "product_id",
        "product",
        "quantity",
        "unit_price",
        "unit_tax",
        "price_variation",
        "notes",
        "modifiers",
    }
)
# What a GET gives back on a line: a client may PUT lines as it read them. ``id`` and
# ``number`` name an existing line and must match it; the totals are recomputed.
LINE_READ_ONLY = frozenset({"id", "number", "line_total_ex_tax", "line_total_tax"})
# Fields a fixture order may leave out of what GET renders, as the order in Kounta's own
# documentation does: a client must then work them out.
OMITTABLE = frozenset({"total", "total_tax", "paid", "price_variation"})
# Generated line and payment ids are of the size Kounta's documentation shows, above the
# ids its own example uses, so that example can be a fixture beside generated ones.
FIRST_LINE_ID = 41000000000
FIRST_PAYMENT_ID = 21000000
ORDER_CREATE_KEYS = frozenset({"status", "lines", "customer_id", "site_id", "notes"})
ORDER_UPDATE_KEYS = frozenset({"status", "lines", "notes"})
PAYMENT_KEYS = frozenset({"method_id", "amount", "ref", "tip"})
WEBHOOK_KEYS = frozenset({"topic", "address", "format", "headers", "filter"})
WEBHOOK_UPDATE_KEYS = frozenset({"address", "headers", "filter"})
JSON_MEDIA = frozenset({"application/json", "application/*", "*/*"})
JSON_SUFFIX = ".json"
SUFFIX_SCOPE_KEY = "kounta.json_suffix"
EXPIRED = "The access token provided has expired"
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
ONE = Decimal(1)
CENT = Decimal("0.01")
MAX_VARIATION = Decimal(10)
MAX_NUMBER = Decimal(1_000_000_000)

Clock = Callable[[], float]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        description: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers


def _invalid(message: str) -> ApiError:
    return ApiError(400, message)


def _invalid_field(field: str, problem: str) -> ApiError:
    return _invalid(f"{field} {problem}")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


# -- error bodies and request bodies -------------------------------------------------------------


def _error_response(exc: ApiError) -> Response:
    content = {"error": exc.error}
    if exc.description is not None:
        content["error_description"] = exc.description
    return ApiResponse(content, status_code=exc.status, headers=exc.headers)


async def _json_body(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; an empty body is ``{}`` where the body is optional."""
    body = await request.body()
    if optional and not body.strip():
        return {}
    return common.json_object(
        body,
        invalid_json=lambda problem: _invalid(f"Invalid JSON: {problem}"),
        not_an_object=lambda: _invalid("The request body must be a JSON object"),
    )


# -- field readers: each raises a 400 naming the field ------------------------------------------


# A number is a JSON number, never a string or a bool; bounded so that no arithmetic can overflow.
_FIELDS = common.FieldReader(_invalid_field, numeric_strings=False, limit=MAX_NUMBER)
_number = _FIELDS.number
_required_number = _FIELDS.required_number


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(value: object, field: str) -> int:
    if not _is_int(value):
        raise _invalid(f"{field} must be an integer")
    return value


def _string(value: object, field: str) -> str:
    """Text fields: null clears them to "", as Kounta renders a missing value."""
    return _FIELDS.text(value, field) or ""


def _optional_number(data: Mapping[str, Any], key: str, where: str, default: Decimal) -> Decimal:
    value = _FIELDS.optional_number(data, key, where)
    return default if value is None else value


def _whole_cents(amount: Decimal, field: str) -> Decimal:
    """Payments are whole cents: a fraction of a cent cannot be paid."""
    if amount != amount.quantize(CENT):
        raise _invalid(f"{field} must have at most 2 decimal places")
    return amount


def _tip(data: Mapping[str, Any]) -> Decimal:
    tip = _whole_cents(_optional_number(data, "tip", "", ZERO), "tip")
    if tip < 0:
        raise _invalid("tip must be 0 or more")
    return tip


def _object(value: object, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid(f"{field} must be an object")
    return value


def _reject_unknown(data: Mapping[str, Any], allowed: Iterable[str], where: str = "") -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        names = ", ".join(common.field_name(where, key) for key in unknown)
        raise _invalid(f"Unknown or read-only fields: {names}")


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# -- time ----------------------------------------------------------------------------------------


def _stamp(now: float) -> str:
    """ISO 8601 with an offset, as Kounta writes times (ours always UTC)."""
    return datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="seconds")


def _fixture_time(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _invalid(f"{key} must be an ISO 8601 date-time")
    parsed = common.parse_utc(value)
    if parsed is None:
        raise _invalid(f"{key} must be an ISO 8601 date-time")
    return parsed.isoformat(timespec="seconds")


# -- HTTP helpers --------------------------------------------------------------------------------


def _media_type(header: str) -> str:
    return header.partition(";")[0].strip().lower()


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _accepts_json(accept: str) -> bool:
    """Kounta answers JSON only, so a request must ask for it; no Accept header at all is a 406."""
    for item in accept.split(","):
        media, _, params = item.partition(";")
        if media.strip().lower() in JSON_MEDIA and _quality(params) > 0:
            return True
    return False


def _path_id(value: str) -> int | None:
    """Path ids are digits; anything else (or an absurd length) simply matches nothing."""
    return int(value) if re.fullmatch(r"[0-9]{1,18}", value) else None


def _path_int(request: Request, name: str, not_found: str) -> int:
    value = _path_id(request.path_params[name])
    if value is None:
        raise ApiError(404, not_found)
    return value


def _paginated(request: Request, items: list[Any]) -> Response:
    """Kounta's paging (TandaHQ client): request header X-Page from 0, response header X-Pages."""
    raw = request.headers.get("x-page", "0").strip()
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise _invalid("X-Page must be a page number, counted from 0")
    page = int(raw)
    pages = max(1, math.ceil(len(items) / PAGE_SIZE))
    chunk = items[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    return ApiResponse(chunk, headers={"X-Pages": str(pages), "X-Page": str(page)})


# -- the state -----------------------------------------------------------------------------------


class KountaState:
    """One company's data, its tokens and the rules that change them; built whole from fixtures.

    Every method that changes something validates the whole request first and only then
    mutates, so a 400 leaves the state exactly as it was.
    """

    def __init__(self, fixtures: object, now: float) -> None:
        data = common.fixture_data(fixtures, FIXTURE_KEYS)
        self.company = _company(data.get("company"))
        self.sites = _records(data, "sites")
        self.payment_methods = _records(data, "payment_methods")
        self.customers: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.product_names: dict[int, str] = {}
        self.line_ids: set[int] = set()
        self.payment_ids: set[int] = set()
        self.fixture_tokens: list[tuple[str, str, float]] = []
        where = "payment_methods"
        try:
            for method in self.payment_methods.values():
                where = f"payment_methods {method['id']}"
                method["name"] = _string(method.get("name"), "name")
                method["ledger_code"] = _string(method.get("ledger_code"), "ledger_code")
            for raw in _records(data, "customers").values():
                where = f"customers {raw['id']}"
                self.customers[raw["id"]] = self._customer_from_fixture(raw, now)
            for raw in _records(data, "orders").values():
                where = f"orders {raw['id']}"
                self.orders[raw["id"]] = self._order_from_fixture(raw, now)
            for raw in _records(data, "webhooks").values():
                where = f"webhooks {raw['id']}"
                self.webhooks[raw["id"]] = self._webhook_from_fixture(raw)
            where = "tokens"
            self._tokens_from_fixture(data.get("tokens"), now)
        except ApiError as exc:
            raise FixtureError(f"{where}: {exc.error}") from None

    # -- tokens --

    def _tokens_from_fixture(self, tokens: object, now: float) -> None:
        """The pairs the fixtures hand out, for the authorization server to know."""
        if tokens is None:
            return
        if not isinstance(tokens, list):
            raise _invalid("must be an array")
        for i, item in enumerate(tokens):
            if not isinstance(item, dict):
                raise _invalid(f"[{i}] must be an object")
            access, refresh = item.get("access_token"), item.get("refresh_token")
            if not isinstance(access, str) or not access:
                raise _invalid(f"[{i}].access_token must be a non-empty string")
            if not isinstance(refresh, str) or not refresh:
                raise _invalid(f"[{i}].refresh_token must be a non-empty string")
            expires_in = _integer(item.get("expires_in"), f"[{i}].expires_in")
            if any({access, refresh} & {a, r} for a, r, _ in self.fixture_tokens):
                raise _invalid(f"[{i}] repeats a token")
            self.fixture_tokens.append((access, refresh, now + expires_in))

    # -- customers --

    def _new_customer(self, customer_id: int, stamp: str) -> dict[str, Any]:
        customer: dict[str, Any] = {"id": customer_id, **dict.fromkeys(CUSTOMER_TEXT, "")}
        customer.update(
            tags=[],
            primary_address=None,
            shipping_address=None,
            accepts_marketing=False,
            created_at=stamp,
            updated_at=stamp,
        )
        return customer

    def _customer_from_fixture(self, raw: Mapping[str, Any], now: float) -> dict[str, Any]:
        stamp = _stamp(now)
        customer = self._new_customer(raw["id"], stamp)
        _apply_customer(customer, {k: v for k, v in raw.items() if k in CUSTOMER_WRITABLE})
        customer["created_at"] = _fixture_time(raw, "created_at", stamp)
        customer["updated_at"] = _fixture_time(raw, "updated_at", customer["created_at"])
        self._check_customer(customer)
        return customer

    def _check_customer(self, customer: Mapping[str, Any]) -> None:
        if not customer["first_name"].strip():
            raise _invalid("first_name is required")
        if not any(customer[key].strip() for key in ("email", "phone", "mobile")):
            raise _invalid("One of email, phone or mobile is required")
        if customer["email"] and "@" not in customer["email"]:
            raise _invalid("email must be an email address")
        mobile = customer["mobile"].strip()
        for other in self.customers.values():
            if mobile and other["id"] != customer["id"] and other["mobile"].strip() == mobile:
                raise _invalid("mobile is already used by another customer")

    def create_customer(self, body: Mapping[str, Any], now: float) -> dict[str, Any]:
        _reject_unknown(body, CUSTOMER_WRITABLE)
        customer = self._new_customer(max(self.customers, default=0) + 1, _stamp(now))
        _apply_customer(customer, body)
        self._check_customer(customer)
        self.customers[customer["id"]] = customer
        return customer

    def update_customer(
        self, customer_id: int, body: Mapping[str, Any], now: float
    ) -> dict[str, Any]:
        existing = self.customer(customer_id)
        _reject_unknown(body, CUSTOMER_WRITABLE)
        customer = dict(existing)
        _apply_customer(customer, body)
        self._check_customer(customer)
        customer["updated_at"] = _stamp(now)
        self.customers[customer["id"]] = customer
        return customer

    def customer(self, customer_id: int) -> dict[str, Any]:
        customer = self.customers.get(customer_id)
        if customer is None:
            raise ApiError(404, "Customer not found")
        return customer

    # -- orders --

    def order(self, order_id: int) -> dict[str, Any]:
        """A deleted order is gone from every route but the deleted list: reading, changing
        or paying it is 404, as for an order that never was (inferred: the strict reading)."""
        order = self.orders.get(order_id)
        if order is None or order["deleted_at"] is not None:
            raise ApiError(404, "Order not found")
        return order

    def listed_orders(self, *, deleted: bool) -> list[dict[str, Any]]:
        """The orders a list shows, newest first: ``/orders`` the live ones, ``/orders/deleted``
        the deleted ones."""
        orders = [o for o in self.orders.values() if (o["deleted_at"] is not None) == deleted]
        orders.sort(key=lambda o: (o["created_at"], o["id"]), reverse=True)
        return orders

    def _order_from_fixture(self, raw: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Fixture orders are taken as they are: any status, payments without owing checks."""
        status = _string(raw.get("status"), "status")
        if status not in STATUSES:
            raise _invalid(f"status must be one of {', '.join(STATUSES)}")
        order = self._new_order(raw["id"], raw, status, _stamp(now), fixture=True)
        variation = _optional_number(raw, "price_variation", "", ONE)
        if not ZERO < variation <= MAX_VARIATION:
            raise _invalid("price_variation must be greater than 0 and at most 10")
        order["price_variation"] = variation
        order["omit_fields"] = _omit_fields(raw.get("omit_fields"))
        if raw.get("register_id") is not None:
            order["register_id"] = _integer(raw["register_id"], "register_id")
        if raw.get("sale_number") is not None:
            order["sale_number"] = str(raw["sale_number"])
        order["created_at"] = _fixture_time(raw, "created_at", order["created_at"])
        order["placed_at"] = _fixture_time(raw, "placed_at", order["created_at"])
        order["updated_at"] = _fixture_time(raw, "updated_at", order["created_at"])
        payments = raw.get("payments") or []
        if not isinstance(payments, list):
            raise _invalid("payments must be an array")
        for i, item in enumerate(payments, 1):
            order["payments"].append(self._payment_from_fixture(item, i, order["created_at"]))
        self._commit_lines(order["lines"])
        return order

    def _payment_from_fixture(self, item: object, number: int, stamp: str) -> dict[str, Any]:
        where = f"payments[{number - 1}]"
        if not isinstance(item, dict):
            raise _invalid(f"{where} must be an object")
        method = _object(item.get("method"), f"{where}.method") or {}
        method_id = _integer(item.get("method_id", method.get("id")), f"{where}.method_id")
        if method_id not in self.payment_methods:
            raise _invalid(f"{where}.method_id is not a known payment method")
        payment_id = item.get("id")
        if payment_id is not None:
            payment_id = _integer(payment_id, f"{where}.id")
            if payment_id <= 0 or payment_id in self.payment_ids:
                raise _invalid(f"{where}.id must be a positive integer no other payment has")
        else:
            payment_id = _next_id(self.payment_ids, FIRST_PAYMENT_ID)
        self.payment_ids.add(payment_id)
        return {
            "id": payment_id,
            "number": number,
            "method_id": method_id,
            "amount": _required_number(item, "amount", where),
            "ref": _string(item.get("ref"), f"{where}.ref"),
            "tip": _optional_number(item, "tip", where, ZERO),
            "created_at": _fixture_time(item, "created_at", stamp),
        }

    def _new_order(
        self,
        order_id: int,
        body: Mapping[str, Any],
        status: str,
        stamp: str,
        *,
        fixture: bool = False,
    ) -> dict[str, Any]:
        """Reads the fields a create body and a fixture share. Lines are numbered from 1; a
        fixture may give their ids and numbers, a client may not (they get theirs when the
        order is stored)."""
        lines = self._parse_lines(body.get("lines"))
        _number_new_lines(body.get("lines") or [], lines, fixture=fixture, taken=self.line_ids)
        customer_id = body.get("customer_id")
        if customer_id is not None:
            customer_id = _integer(customer_id, "customer_id")
            if customer_id not in self.customers:
                raise _invalid("customer_id is not a known customer")
        site_id = body.get("site_id")
        if site_id is None:
            site_id = next(iter(self.sites), None)
        else:
            site_id = _integer(site_id, "site_id")
            if site_id not in self.sites:
                raise _invalid("site_id is not a known site")
        return {
            "id": order_id,
            "status": status,
            "sale_number": str(order_id),
            "notes": _string(body.get("notes"), "notes"),
            "site_id": site_id,
            "register_id": None,
            "customer_id": customer_id,
            "lines": lines,
            "payments": [],
            "price_variation": ONE,
            "omit_fields": [],
            "placed_at": stamp,
            "created_at": stamp,
            "updated_at": stamp,
            "deleted_at": None,
        }

    def create_order(self, body: Mapping[str, Any], now: float) -> dict[str, Any]:
        _reject_unknown(body, ORDER_CREATE_KEYS)
        status = _string(body.get("status"), "status")
        if status not in CREATE_STATUSES:
            raise _invalid(f"status must be one of {', '.join(CREATE_STATUSES)}")
        order_id = max(self.orders, default=0) + 1
        order = self._new_order(order_id, body, status, _stamp(now))
        self._commit_lines(order["lines"])
        self.orders[order_id] = order
        return order

    def update_order(self, order_id: int, body: Mapping[str, Any], now: float) -> None:
        order = self.order(order_id)
        _require_open(order)
        _reject_unknown(body, ORDER_UPDATE_KEYS)
        changes: dict[str, Any] = {}
        if "status" in body:
            status = _string(body["status"], "status")
            if status == "COMPLETE":
                raise _invalid("status COMPLETE is set by the POS when the order is completed")
            if status not in STATUSES:
                raise _invalid(f"status must be one of {', '.join(STATUSES[:-1])}")
            changes["status"] = status
        if "notes" in body:
            changes["notes"] = _string(body["notes"], "notes")
        if "lines" in body:
            lines = self._parse_lines(body["lines"])
            _keep_existing_lines(order["lines"], body["lines"], lines)
            if _total(lines, order["price_variation"]) < _paid(order):
                raise _invalid("Order total would be less than the amount paid")
            changes["lines"] = lines
        order.update(changes, updated_at=_stamp(now))
        self._commit_lines(order["lines"])

    # -- what the till does to an order (the ``/_sandbox/orders/{id}/...`` routes) --

    def complete_order(self, order_id: int, now: float) -> dict[str, Any]:
        """The POS finishing an order; completing a completed order changes nothing."""
        order = self.order(order_id)
        if order["status"] == "REJECTED":
            raise _invalid(CLOSED["REJECTED"])
        if order["status"] != "COMPLETE":
            order.update(status="COMPLETE", updated_at=_stamp(now))
        return order

    def reject_order(self, order_id: int, now: float) -> dict[str, Any]:
        """The till rejecting an order, open or completed (a sale the café takes back as a
        whole): it is closed for good. A reject refunds nothing: the payments stay on the
        order as they were, ``paid`` included (inferred; what was paid is the café's to give
        back, and a REJECTED order takes no payment, not even a refund). Rejecting a rejected
        order changes nothing."""
        order = self.order(order_id)
        if order["status"] != "REJECTED":
            order.update(status="REJECTED", updated_at=_stamp(now))
        return order

    def delete_order(self, order_id: int, now: float) -> dict[str, Any]:
        """The till deleting an order in any status, payments and all, as they were:
        afterwards only ``/orders/deleted`` shows it, with ``deleted_at`` (``order`` answers
        404)."""
        order = self.order(order_id)
        stamp = _stamp(now)
        order.update(deleted_at=stamp, updated_at=stamp)
        return order

    def _parse_lines(self, lines: object) -> list[dict[str, Any]]:
        if not isinstance(lines, list) or not lines:
            raise _invalid("lines must be a non-empty array")
        return [self._parse_line(item, f"lines[{i}]") for i, item in enumerate(lines)]

    def _parse_line(self, item: object, where: str) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise _invalid(f"{where} must be an object")
        _reject_unknown(item, LINE_KEYS | LINE_READ_ONLY, where)
        product = _object(item.get("product"), f"{where}.product") or {}
        product_id = item.get("product_id", product.get("id"))
        if product_id is None:
            raise _invalid(f"{where}.product_id is required")
        product_id = _integer(product_id, f"{where}.product_id")
        if product.get("id") is not None and product.get("id") != product_id:
            raise _invalid(f"{where}.product.id does not match product_id")
        name = _string(product.get("name"), f"{where}.product.name")
        quantity = _required_number(item, "quantity", where)
        if quantity <= 0:
            raise _invalid(f"{where}.quantity must be greater than 0")
        unit_price = _required_number(item, "unit_price", where)
        unit_tax = _optional_number(item, "unit_tax", where, ZERO)
        if unit_price < 0 or unit_tax < 0:
            raise _invalid(f"{where}.unit_price and unit_tax must be 0 or more")
        variation = _optional_number(item, "price_variation", where, ONE)
        if not ZERO < variation <= MAX_VARIATION:
            raise _invalid(f"{where}.price_variation must be greater than 0 and at most 10")
        return {
            "id": None,
            "number": None,
            "modifiers": _modifiers(item.get("modifiers"), f"{where}.modifiers"),
            "product_id": product_id,
            "name": name or self.product_names.get(product_id, ""),
            "quantity": quantity,
            "unit_price": unit_price,
            "unit_tax": unit_tax,
            "price_variation": variation,
            "notes": _string(item.get("notes"), f"{where}.notes"),
        }

    def _commit_lines(self, lines: list[dict[str, Any]]) -> None:
        """Once stored: new lines get their ids, and Kounta, which knows its products, learns
        the names the lines told it, for later lines."""
        for line in lines:
            if line["id"] is None:
                line["id"] = _next_id(self.line_ids, FIRST_LINE_ID)
            self.line_ids.add(line["id"])
            if line["name"]:
                self.product_names[line["product_id"]] = line["name"]

    # -- payments --

    def add_payment(self, order_id: int, body: Mapping[str, Any], now: float) -> int:
        """A payment, or with a negative ``amount`` a refund (Kounta's payments page). A
        payment needs an open order and at most what is owed; a refund may also come after
        the order completed, and at most gives back what was paid in all (net of earlier
        refunds). A REJECTED order takes neither."""
        order = self.order(order_id)
        if order["status"] == "REJECTED":
            raise _invalid(CLOSED["REJECTED"])
        _reject_unknown(body, PAYMENT_KEYS)
        method_id = _integer(body.get("method_id"), "method_id")
        if method_id not in self.payment_methods:
            raise _invalid("method_id is not a known payment method")
        amount = _whole_cents(_required_number(body, "amount"), "amount")
        if amount == 0:
            raise _invalid("amount must not be 0")
        ref = _string(body.get("ref"), "ref")
        tip = _tip(body)
        paid = _paid(order)
        if amount > 0:
            _require_open(order)
            if amount > _total(order["lines"], order["price_variation"]) - paid:
                raise _invalid("Payment exceeds the amount owing")
        else:
            if tip:
                raise _invalid("tip must be 0 on a refund")
            if -amount > paid:
                raise _invalid_field(
                    "amount", f"{amount:.2f} refunds more than the {paid:.2f} paid"
                )
        number = len(order["payments"]) + 1
        stamp = _stamp(now)
        payment_id = _next_id(self.payment_ids, FIRST_PAYMENT_ID)
        self.payment_ids.add(payment_id)
        order["payments"].append(
            {
                "id": payment_id,
                "number": number,
                "method_id": method_id,
                "amount": amount,
                "ref": ref,
                "tip": tip,
                "created_at": stamp,
            }
        )
        order["updated_at"] = stamp
        return number

    def update_payment(
        self, order_id: int, number: int, body: Mapping[str, Any], now: float
    ) -> dict[str, Any]:
        order = self.order(order_id)
        payments = order["payments"]
        if not 1 <= number <= len(payments):
            raise ApiError(404, "Payment not found")
        _require_open(order)
        _reject_unknown(body, ("ref", "tip"))
        changes: dict[str, Any] = {}
        if "ref" in body:
            changes["ref"] = _string(body["ref"], "ref")
        if "tip" in body:
            changes["tip"] = _tip(body)
        payment: dict[str, Any] = payments[number - 1]
        payment.update(changes)
        order["updated_at"] = _stamp(now)
        return payment

    # -- webhooks --

    def webhook(self, webhook_id: int) -> dict[str, Any]:
        webhook = self.webhooks.get(webhook_id)
        if webhook is None:
            raise ApiError(404, "Webhook not found")
        return webhook

    def _webhook_from_fixture(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        webhook = {"id": raw["id"], **_parse_webhook({k: raw.get(k) for k in WEBHOOK_KEYS})}
        self._check_unique(webhook)
        return webhook

    def create_webhook(self, body: Mapping[str, Any]) -> dict[str, Any]:
        _reject_unknown(body, WEBHOOK_KEYS)
        webhook = {"id": max(self.webhooks, default=0) + 1, **_parse_webhook(body)}
        self._check_unique(webhook)
        self.webhooks[webhook["id"]] = webhook
        return webhook

    def update_webhook(self, webhook_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        existing = self.webhook(webhook_id)
        _reject_unknown(body, WEBHOOK_UPDATE_KEYS)
        merged = {key: existing[key] for key in WEBHOOK_KEYS}
        merged.update(body)
        webhook = {"id": existing["id"], **_parse_webhook(merged)}
        self._check_unique(webhook)
        self.webhooks[webhook["id"]] = webhook
        return webhook

    def delete_webhook(self, webhook_id: int) -> None:
        del self.webhooks[self.webhook(webhook_id)["id"]]

    def _check_unique(self, webhook: Mapping[str, Any]) -> None:
        for other in self.webhooks.values():
            same = (other["topic"], other["address"]) == (webhook["topic"], webhook["address"])
            if same and other["id"] != webhook["id"]:
                raise ApiError(409, "Webhook already exists")

    # -- rendering --

    def render_order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        variation = order["price_variation"]
        lines = [_render_line(line, variation) for line in order["lines"]]
        total_tax = decimal_sum(line["line_total_tax"] for line in lines)
        customer_id = order["customer_id"]
        customer = self.customers.get(customer_id) if customer_id is not None else None
        rendered = {
            "id": order["id"],
            "company_id": self.company["id"],
            "status": order["status"],
            "sale_number": order["sale_number"],
            "notes": order["notes"],
            "site_id": order["site_id"],
            "register_id": order["register_id"],
            "customer_id": customer_id,
            "customer": None
            if customer is None
            else {k: customer[k] for k in ("id", "first_name", "last_name", "email")},
            "lines": lines,
            "payments": [self.render_payment(p) for p in order["payments"]],
            "price_variation": variation,
            "total": decimal_sum(line["line_total_ex_tax"] for line in lines) + total_tax,
            "total_tax": total_tax,
            "paid": _paid(order),
            "placed_at": order["placed_at"],
            "created_at": order["created_at"],
            "updated_at": order["updated_at"],
        }
        if order["deleted_at"] is not None:
            rendered["deleted_at"] = order["deleted_at"]
        return {k: v for k, v in rendered.items() if k not in order["omit_fields"]}

    def render_payment(self, payment: Mapping[str, Any]) -> dict[str, Any]:
        """As Kounta's documentation shows a payment: its ``id`` and ``method``; the number
        (which only the payment's Location carries) and ``method_id`` are not shown."""
        method = self.payment_methods.get(payment["method_id"], {})
        return {
            "id": payment["id"],
            "method": {"id": payment["method_id"], "name": method.get("name", "")},
            "amount": payment["amount"],
            "ref": payment["ref"],
            "tip": payment["tip"],
            "created_at": payment["created_at"],
        }


def _company(value: object) -> dict[str, Any]:
    if not isinstance(value, dict) or not _is_int(value.get("id")):
        raise FixtureError("company must be an object with an integer id")
    if not isinstance(value.get("name"), str):
        raise FixtureError("company.name must be a string")
    value.setdefault("business_name", value["name"])
    value.setdefault("currency", "USD")
    return value


def _is_id(value: object) -> TypeGuard[int]:
    """Kounta ids are positive integers."""
    return _is_int(value) and value > 0


def _records(data: Mapping[str, Any], key: str) -> dict[int, dict[str, Any]]:
    return common.fixture_records(data, key, _is_id, "a positive integer id")


def _apply_customer(customer: dict[str, Any], body: Mapping[str, Any]) -> None:
    """Writes the writable customer fields present in ``body`` after checking each one."""
    changes: dict[str, Any] = {}
    for key in CUSTOMER_TEXT:
        if key in body:
            changes[key] = _string(body[key], key)
    if "tags" in body:
        tags = body["tags"] if body["tags"] is not None else []
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise _invalid("tags must be an array of strings")
        changes["tags"] = list(tags)
    for key in ("primary_address", "shipping_address"):
        if key in body:
            changes[key] = _object(body[key], key)
    if "accepts_marketing" in body:
        if not isinstance(body["accepts_marketing"], bool):
            raise _invalid("accepts_marketing must be true or false")
        changes["accepts_marketing"] = body["accepts_marketing"]
    customer.update(changes)


def _parse_webhook(body: Mapping[str, Any]) -> dict[str, Any]:
    topic = _string(body.get("topic"), "topic")
    if topic not in TOPICS:
        raise _invalid(f"topic must be one of {', '.join(TOPICS)}")
    address = _string(body.get("address"), "address")
    try:
        parts = urlsplit(address)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("address must be an http or https URL")
    fmt = _string(body.get("format"), "format") or "json"
    if fmt != "json":
        raise _invalid("format must be json")
    headers = _object(body.get("headers"), "headers") or {}
    for name, value in headers.items():
        if not HEADER_NAME.fullmatch(name):
            raise _invalid(f"headers.{name} is not a valid header name")
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            raise _invalid(f"headers.{name} must be a single-line string")
    webhook_filter = _object(body.get("filter"), "filter") or {}
    return {
        "topic": topic,
        "address": address,
        "format": fmt,
        "headers": dict(headers),
        "filter": dict(webhook_filter),
    }


def _order_filter(params: QueryParams) -> Callable[[Mapping[str, Any]], bool]:
    """``status`` and the date filters (``ORDER_DATE_FIELDS`` × ``ORDER_DATE_OPS``: e.g.
    ``created_gte``, ``updated_lt``), all together; any other parameter is a 400 naming it."""
    statuses: list[str] = []
    bounds: list[tuple[str, Callable[[datetime, datetime], bool], datetime]] = []
    for key, raw in params.multi_items():
        field, _, op = key.rpartition("_")
        if key == "status":
            if raw not in STATUSES:
                raise _invalid(f"status must be one of {', '.join(STATUSES)}")
            statuses.append(raw)
        elif field in ORDER_DATE_FIELDS and op in ORDER_DATE_OPS:
            bound = common.parse_utc(raw)
            if bound is None:
                raise _invalid(f"{key} must be an ISO 8601 date-time")
            bounds.append((f"{field}_at", ORDER_DATE_OPS[op], bound))
        elif key in ORDER_FILTERS_NOT_SIMULATED:
            raise _invalid(f"{key} is not simulated by this sandbox")
        else:
            raise _invalid(f"{key} is not an order filter")

    def keep(order: Mapping[str, Any]) -> bool:
        return all(order["status"] == status for status in statuses) and all(
            compare(_parsed(order[stamp]), bound) for stamp, compare, bound in bounds
        )

    return keep


def _parsed(stamp: str) -> datetime:
    """A stored stamp (always written by ``_stamp`` or ``_fixture_time``) as a datetime."""
    return datetime.fromisoformat(stamp)


def _require_open(order: Mapping[str, Any]) -> None:
    message = CLOSED.get(order["status"])
    if message is not None:
        raise _invalid(message)


def _line_totals(line: Mapping[str, Any], order_variation: Decimal) -> tuple[Decimal, Decimal]:
    """Each line rounds half-up to cents on its own, so the totals are sums of what is shown;
    the order's ``price_variation`` multiplies every line's."""
    factor = line["quantity"] * line["price_variation"] * order_variation
    return _cents(line["unit_price"] * factor), _cents(line["unit_tax"] * factor)


def _total(lines: Iterable[Mapping[str, Any]], order_variation: Decimal) -> Decimal:
    """The tax-inclusive total."""
    totals = (_line_totals(line, order_variation) for line in lines)
    return decimal_sum(ex_tax + tax for ex_tax, tax in totals)


def _paid(order: Mapping[str, Any]) -> Decimal:
    return decimal_sum(payment["amount"] for payment in order["payments"])


def _render_line(line: Mapping[str, Any], order_variation: Decimal) -> dict[str, Any]:
    """As Kounta's documentation shows a line: ``id``, ``number``, ``product``, and the
    ``modifiers`` (modifier product ids) it was written with."""
    ex_tax, tax = _line_totals(line, order_variation)
    return {
        "id": line["id"],
        "number": line["number"],
        "product": {"id": line["product_id"], "name": line["name"]},
        "quantity": line["quantity"],
        "unit_price": line["unit_price"],
        "unit_tax": line["unit_tax"],
        "price_variation": line["price_variation"],
        "notes": line["notes"],
        "modifiers": list(line["modifiers"]),
        "line_total_ex_tax": ex_tax,
        "line_total_tax": tax,
    }


def _next_id(taken: set[int], first: int) -> int:
    return max(taken, default=first) + 1


def _modifiers(value: object, field: str) -> list[int]:
    """Modifier product ids; Kounta's own example writes a negative one (``[-67]``)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(_is_int(m) and m != 0 for m in value):
        raise _invalid(f"{field} must be an array of modifier ids (non-zero integers)")
    return list(value)


def _omit_fields(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
        raise _invalid("omit_fields must be an array of field names")
    unknown = sorted(set(value) - OMITTABLE)
    if unknown:
        raise _invalid(f"omit_fields may name only {', '.join(sorted(OMITTABLE))}")
    return list(value)


def _number_new_lines(
    items: object, lines: list[dict[str, Any]], *, fixture: bool, taken: set[int]
) -> None:
    """Lines of a new order are numbered from 1. A fixture may give each its ``id`` and
    ``number`` (unique); a client's are read-only there and ignored."""
    raw = items if isinstance(items, list) else []
    numbers: set[int] = set()
    for i, (item, line) in enumerate(zip(raw, lines, strict=True)):
        line["number"] = i + 1
        if not fixture:
            continue
        if item.get("id") is not None:
            line_id = _integer(item["id"], f"lines[{i}].id")
            if line_id <= 0 or line_id in taken or any(line_id == x["id"] for x in lines[:i]):
                raise _invalid(f"lines[{i}].id must be a positive integer no other line has")
            line["id"] = line_id
        if item.get("number") is not None:
            line["number"] = _integer(item["number"], f"lines[{i}].number")
        if line["number"] <= 0 or line["number"] in numbers:
            raise _invalid(f"lines[{i}].number must be a positive integer unique in the order")
        numbers.add(line["number"])


def _keep_existing_lines(
    existing: list[dict[str, Any]], items: list[Any], lines: list[dict[str, Any]]
) -> None:
    """A PUT of ``lines`` must carry every line the order has, named by its ``id``, with its
    ``number`` and ``modifiers`` as they are; lines without an ``id`` are new ones, numbered
    after the rest. A client that rewrote lines from a few fields would silently delete the
    register's lines, renumber them and drop their modifiers: that is refused, naming the
    field."""
    by_id = {line["id"]: line for line in existing}
    kept: set[int] = set()
    next_number = max((line["number"] for line in existing), default=0) + 1
    for i, (item, line) in enumerate(zip(items, lines, strict=True)):
        where = f"lines[{i}]"
        if item.get("id") is None:
            line["number"] = next_number
            next_number += 1
            continue
        line_id = _integer(item["id"], f"{where}.id")
        old = by_id.get(line_id)
        if old is None:
            raise _invalid(f"{where}.id {line_id} is not a line of this order")
        if line_id in kept:
            raise _invalid(f"{where}.id {line_id} appears twice")
        kept.add(line_id)
        if item.get("number", old["number"]) != old["number"]:
            raise _invalid(f"{where}.number cannot change: line {line_id} is {old['number']}")
        if "modifiers" not in item and old["modifiers"]:
            raise _invalid(
                f"{where}.modifiers left out: line {line_id} has {old['modifiers']}, "
                "which a line written back must keep"
            )
        if line["modifiers"] != old["modifiers"]:
            raise _invalid(
                f"{where}.modifiers cannot change: line {line_id} has {old['modifiers']}"
            )
        line["id"], line["number"] = line_id, old["number"]
    missing = [line for line in existing if line["id"] not in kept]
    if missing:
        gone = missing[0]
        raise _invalid(
            f"lines must keep every line of the order: line id {gone['id']} "
            f"(number {gone['number']}) is missing"
        )


# -- HTTP ----------------------------------------------------------------------------------------


class KountaSandbox:
    """The HTTP face of one ``KountaState``: negotiation, OAuth, scoping and the handlers."""

    def __init__(
        self,
        fixtures: Mapping[str, Any],
        *,
        token: str | None,
        oauth: AuthorizationServer,
        clock: Clock,
        deliver: Deliver,
    ) -> None:
        self.startup = fixtures
        self.token = token
        self.oauth = oauth
        self.clock = clock
        self.deliver = deliver
        self.state = KountaState(fixtures, clock())
        oauth.reset(self.state.fixture_tokens)

    def reset(self, fixtures: Any = None) -> None:
        """Everything comes back from fixtures: issued tokens and added webhooks are forgotten."""
        self.state = KountaState(self.startup if fixtures is None else fixtures, self.clock())
        self.oauth.reset(self.state.fixture_tokens)

    def routes(self) -> list[Route]:
        def route(path: str, handler: common.Handler, method: str = "GET") -> Route:
            return Route(path, self._guarded(handler), methods=[method])

        company = "/v1/companies/{company_id}"
        order = f"{company}/orders/{{order_id}}"
        return [
            *self.oauth.routes(guard=lambda handler: self._guarded(handler, auth=False)),
            route("/v1/companies/me", self.get_company),
            route(company, self.get_company),
            route(f"{company}/sites", self.list_sites),
            route(f"{company}/payment_methods", self.list_payment_methods),
            route(f"{company}/customers", self.list_customers),
            route(f"{company}/customers", self.post_customer, "POST"),
            route(f"{company}/customers/{{customer_id}}", self.get_customer),
            route(f"{company}/customers/{{customer_id}}", self.put_customer, "PUT"),
            route(f"{company}/orders", self.list_orders),
            route(f"{company}/orders", self.post_order, "POST"),
            # Before the order route, which would take "complete" for an id (and find none).
            route(f"{company}/orders/complete", self.list_complete_orders),
            route(f"{company}/orders/deleted", self.list_deleted_orders),
            route(order, self.get_order),
            route(order, self.put_order, "PUT"),
            route(f"{order}/payments", self.post_payment, "POST"),
            route(f"{order}/payments/{{number}}", self.put_payment, "PUT"),
            route(f"{company}/webhooks", self.list_webhooks),
            route(f"{company}/webhooks", self.post_webhook, "POST"),
            route(f"{company}/webhooks/{{webhook_id}}", self.get_webhook),
            route(f"{company}/webhooks/{{webhook_id}}", self.put_webhook, "PUT"),
            route(f"{company}/webhooks/{{webhook_id}}", self.delete_webhook, "DELETE"),
        ]

    def admin_routes(self) -> list[Route]:
        return [
            *self.oauth.admin_routes(),
            Route("/_sandbox/orders/{order_id}/complete", self.complete_order, methods=["POST"]),
            Route("/_sandbox/orders/{order_id}/refund", self.refund_order, methods=["POST"]),
            Route("/_sandbox/orders/{order_id}/reject", self.reject_order, methods=["POST"]),
            Route("/_sandbox/orders/{order_id}/delete", self.delete_order, methods=["POST"]),
        ]

    def _guarded(self, handler: common.Handler, *, auth: bool = True) -> common.Handler:
        """The checks every API request passes, in order: 406, 401, 404 company, 400 body type."""

        def check(request: Request) -> None:
            suffix = bool(request.scope.get(SUFFIX_SCOPE_KEY))
            if not suffix and not _accepts_json(request.headers.get("accept", "")):
                raise ApiError(
                    406, "Not Acceptable: accept application/json or add .json to the path"
                )
            if auth:
                self._authorize(request)
                self._check_company(request)
                content_type = _media_type(request.headers.get("content-type", ""))
                if request.method in ("POST", "PUT") and content_type != "application/json":
                    raise _invalid("Content-Type must be application/json")

        return common.guarded(handler, check, ApiError, _error_response)

    def _authorize(self, request: Request) -> None:
        token = common.bearer_token(request)
        if token is None:
            raise _unauthorized("invalid_token")
        if self.token is not None and common.same_secret(token, self.token):
            return
        access = self.oauth.tokens.lookup(token)
        if access is None:
            raise _unauthorized("invalid_token")
        if access.expired(self.clock()):
            raise _unauthorized(EXPIRED)

    def _check_company(self, request: Request) -> None:
        raw = request.path_params.get("company_id")
        if raw is not None and _path_id(raw) != self.state.company["id"]:
            raise ApiError(404, "Company not found")

    # -- company, sites, payment methods --

    async def get_company(self, request: Request) -> Response:
        return ApiResponse(self.state.company)

    async def list_sites(self, request: Request) -> Response:
        return ApiResponse(list(self.state.sites.values()))

    async def list_payment_methods(self, request: Request) -> Response:
        methods = self.state.payment_methods.values()
        return ApiResponse([{k: m[k] for k in ("id", "name", "ledger_code")} for m in methods])

    # -- customers --

    def _customer_url(self, customer_id: int) -> str:
        return f"/v1/companies/{self.state.company['id']}/customers/{customer_id}"

    async def list_customers(self, request: Request) -> Response:
        params = request.query_params
        by_name = [key for key in ("first_name", "last_name", "phone") if key in params]
        chosen = [key for key in ("reference_id", "email") if key in params]
        if len(chosen) + bool(by_name) > 1:
            raise _invalid("Search by one of reference_id, email or first_name+last_name+phone")
        customers = list(self.state.customers.values())
        if "reference_id" in params:
            reference = params["reference_id"]
            if not reference:
                raise _invalid("reference_id must not be empty")
            return ApiResponse([c for c in customers if c["reference_id"] == reference])
        if "email" in params:
            email = params["email"].strip().lower()
            if not email:
                raise _invalid("email must not be empty")
            return self._redirect([c for c in customers if c["email"].lower() == email])
        if by_name:
            if len(by_name) < 3 or not all(params[key].strip() for key in by_name):
                raise _invalid("first_name, last_name and phone are all required")
            return self._redirect([c for c in customers if _same_person(c, params)])
        return _paginated(request, customers)

    def _redirect(self, found: list[dict[str, Any]]) -> Response:
        if not found:
            raise ApiError(404, "Customer not found")
        return Response(status_code=302, headers={"Location": self._customer_url(found[0]["id"])})

    async def get_customer(self, request: Request) -> Response:
        customer_id = _path_int(request, "customer_id", "Customer not found")
        return ApiResponse(self.state.customer(customer_id))

    async def put_customer(self, request: Request) -> Response:
        customer_id = _path_int(request, "customer_id", "Customer not found")
        body = await _json_body(request)
        customer = self.state.update_customer(customer_id, body, self.clock())
        return ApiResponse(customer)

    async def post_customer(self, request: Request) -> Response:
        customer = self.state.create_customer(await _json_body(request), self.clock())
        location = self._customer_url(customer["id"])
        return ApiResponse(customer, 201, headers={"Location": location})

    # -- orders and payments --

    def _order_url(self, order_id: int) -> str:
        return f"/v1/companies/{self.state.company['id']}/orders/{order_id}"

    async def list_orders(self, request: Request) -> Response:
        return self._order_list(request, self.state.listed_orders(deleted=False))

    async def list_complete_orders(self, request: Request) -> Response:
        orders = self.state.listed_orders(deleted=False)
        return self._order_list(request, [o for o in orders if o["status"] == "COMPLETE"])

    async def list_deleted_orders(self, request: Request) -> Response:
        return self._order_list(request, self.state.listed_orders(deleted=True))

    def _order_list(self, request: Request, orders: list[dict[str, Any]]) -> Response:
        keep = _order_filter(request.query_params)
        return _paginated(request, [self.state.render_order(o) for o in orders if keep(o)])

    async def get_order(self, request: Request) -> Response:
        order = self.state.order(_path_int(request, "order_id", "Order not found"))
        return ApiResponse(self.state.render_order(order))

    async def post_order(self, request: Request) -> Response:
        order = self.state.create_order(await _json_body(request), self.clock())
        location = self._order_url(order["id"])
        return ApiResponse(self.state.render_order(order), 201, headers={"Location": location})

    async def put_order(self, request: Request) -> Response:
        order_id = _path_int(request, "order_id", "Order not found")
        self.state.update_order(order_id, await _json_body(request), self.clock())
        return ApiResponse(self.state.render_order(self.state.order(order_id)))

    async def post_payment(self, request: Request) -> Response:
        """201 with an empty body: the Location is only for updating the payment."""
        order_id = _path_int(request, "order_id", "Order not found")
        number = self.state.add_payment(order_id, await _json_body(request), self.clock())
        location = f"{self._order_url(order_id)}/payments/{number}"
        return Response(status_code=201, headers={"Location": location})

    async def put_payment(self, request: Request) -> Response:
        order_id = _path_int(request, "order_id", "Order not found")
        number = _path_id(request.path_params["number"]) or 0
        body = await _json_body(request)
        payment = self.state.update_payment(order_id, number, body, self.clock())
        return ApiResponse(self.state.render_payment(payment))

    # -- webhooks --

    async def list_webhooks(self, request: Request) -> Response:
        return _paginated(request, list(self.state.webhooks.values()))

    async def post_webhook(self, request: Request) -> Response:
        webhook = self.state.create_webhook(await _json_body(request))
        location = f"/v1/companies/{self.state.company['id']}/webhooks/{webhook['id']}"
        return ApiResponse(webhook, 201, headers={"Location": location})

    async def get_webhook(self, request: Request) -> Response:
        webhook_id = _path_int(request, "webhook_id", "Webhook not found")
        return ApiResponse(self.state.webhook(webhook_id))

    async def put_webhook(self, request: Request) -> Response:
        webhook_id = _path_int(request, "webhook_id", "Webhook not found")
        return ApiResponse(self.state.update_webhook(webhook_id, await _json_body(request)))

    async def delete_webhook(self, request: Request) -> Response:
        self.state.delete_webhook(_path_int(request, "webhook_id", "Webhook not found"))
        return Response(status_code=204)

    # -- what the till does to an order --

    async def complete_order(self, request: Request) -> Response:
        """Completes the order, then sends ``TILL_TOPICS["complete"]``."""
        return await self._till(request, "complete", ())

    async def reject_order(self, request: Request) -> Response:
        return await self._till(request, "reject", ())

    async def delete_order(self, request: Request) -> Response:
        return await self._till(request, "delete", ())

    async def refund_order(self, request: Request) -> Response:
        """The till's refund: a payment body as the API takes it, with a negative ``amount``
        (the API's own rule, ``KountaState.add_payment``), and the delivery options."""
        return await self._till(request, "refund", PAYMENT_KEYS)

    def _act(self, act: str, order_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        now = self.clock()
        if act == "refund":
            self.state.order(order_id)
            amount = body.get("amount")
            if not isinstance(amount, Decimal | int) or isinstance(amount, bool) or amount >= 0:
                raise _invalid("amount must be a negative number: a refund is a negative payment")
            self.state.add_payment(order_id, body, now)
            return self.state.order(order_id)
        change = {
            "complete": self.state.complete_order,
            "reject": self.state.reject_order,
            "delete": self.state.delete_order,
        }[act]
        return change(order_id, now)

    async def _till(self, request: Request, act: str, fields: Iterable[str]) -> Response:
        """One act of the till on an order, then its webhooks (``TILL_TOPICS[act]``), each
        ``deliveries`` times (default 1; 0 loses them) to every subscriber of the topic, one
        after another or all at once (``concurrent``); answers the order and every delivery."""
        try:
            options = await _json_body(request, optional=True)
            _reject_unknown(options, (*DELIVERY_OPTIONS, *fields))
            times = _integer(options.get("deliveries", 1), "deliveries")
            if times < 0:
                raise _invalid("deliveries must be 0 or more")
            concurrent = options.get("concurrent", False)
            if not isinstance(concurrent, bool):
                raise _invalid("concurrent must be true or false")
            order_id = _path_int(request, "order_id", "Order not found")
            body = {k: v for k, v in options.items() if k not in DELIVERY_OPTIONS}
            order = self.state.render_order(self._act(act, order_id, body))
        except ApiError as exc:
            return _error_response(exc)
        body_bytes = common.dumps(order)
        jobs = [
            (topic, hook, body_bytes)
            for _ in range(times)
            for topic in TILL_TOPICS[act]
            for hook in self.state.webhooks.values()
            if hook["topic"] == topic
        ]
        if concurrent:
            results = list(await asyncio.gather(*(self._send(*job) for job in jobs)))
        else:
            results = [await self._send(*job) for job in jobs]
        return ApiResponse({"order": order, "deliveries": results})

    async def _send(self, topic: str, hook: Mapping[str, Any], body: bytes) -> dict[str, Any]:
        """One delivery; a failure is reported in the result, never raised."""
        headers = {k: v for k, v in hook["headers"].items() if k.lower() != "content-type"}
        headers["Content-Type"] = "application/json"
        result: dict[str, Any] = {
            "webhook_id": hook["id"],
            "topic": topic,
            "address": hook["address"],
        }
        try:
            status = await self.deliver(hook["address"], headers, body)
        except Exception as exc:
            return {**result, "status": None, "error": f"{type(exc).__name__}: {exc}"}
        return {**result, "status": status, "error": None}


def _token_answer(issued: Issued) -> dict[str, Any]:
    """Kounta's token answer (client code shows these four fields)."""
    return {
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "expires_in": issued.expires_in,
        "token_type": "Bearer",
    }


def _same_person(customer: Mapping[str, Any], params: Mapping[str, str]) -> bool:
    """Names match case-insensitively, the phone exactly (ignoring surrounding spaces)."""
    first, last, phone = (params[key].strip() for key in ("first_name", "last_name", "phone"))
    return bool(
        customer["first_name"].lower() == first.lower()
        and customer["last_name"].lower() == last.lower()
        and customer["phone"].strip() == phone
    )


class JsonSuffixMiddleware:
    """Kounta answers every path with a ``.json`` suffix too. Stripping it before the controls
    and the router means one route, one stats key and one fault path for both spellings."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/v1/") and path.endswith(JSON_SUFFIX):
            scope = {**scope, "path": path[: -len(JSON_SUFFIX)], SUFFIX_SCOPE_KEY: True}
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Router 404s and 405s in the API's JSON error shape instead of Starlette's plain text."""
    assert isinstance(exc, HTTPException)
    return ApiResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def load_fixtures(path: str | Path) -> dict[str, Any]:
    """Read and check a fixture file now, so a bad file fails at startup with its name."""
    return common.read_fixtures(path, lambda data: KountaState(data, time.time()))


def create_app(
    fixtures: Mapping[str, Any] | None = None,
    *,
    token: str | None = None,
    latency_ms: int = 0,
    token_lifetime_s: int = TOKEN_LIFETIME_S,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    redirect_uris: Iterable[str] | None = None,
    clock: Clock = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    deliver: Deliver = deliver_over_http,
) -> Starlette:
    """The Kounta sandbox app; ``clock``, ``sleep`` and ``deliver`` are injectable so tests
    never wait and can capture webhooks without a server. ``client_id`` and
    ``client_secret``: the OAuth app it knows; ``token_lifetime_s``: how long the access
    tokens it issues live; ``redirect_uris``: the app's registered ones (None: any absolute
    http(s) URL); ``token``: a static access token that is always valid, for scripts."""
    startup = load_fixtures(DEMO_FIXTURES) if fixtures is None else fixtures
    oauth = AuthorizationServer(
        name="Kounta",
        consent_path="/authorize",
        exchange_path="/v1/token",
        client_id=client_id,
        client_secret=client_secret,
        lifetime_s=token_lifetime_s,
        clock=clock,
        answer=_token_answer,
        redirect_uris=redirect_uris,
    )
    sandbox = KountaSandbox(startup, token=token, oauth=oauth, clock=clock, deliver=deliver)
    api_routes = sandbox.routes()
    controls = SandboxControls(
        routes=api_routes,
        default_rate_limit=lambda: DEFAULT_RATE_LIMIT,
        reset=sandbox.reset,
        latency_ms=latency_ms,
        clock=clock,
        sleep=sleep,
    )
    app = Starlette(
        routes=[*controls.admin_routes(), *sandbox.admin_routes(), *api_routes],
        middleware=[
            Middleware(JsonSuffixMiddleware),
            Middleware(ControlsMiddleware, controls=controls),
        ],
        exception_handlers={HTTPException: _http_error, Exception: common.server_error},
    )
    app.state.sandbox = sandbox
    app.state.controls = controls
    return app
