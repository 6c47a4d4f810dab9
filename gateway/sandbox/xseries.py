"""A stateful simulator of the Lightspeed Retail X-Series (formerly Vend) HTTP API.

It plays the POS for our own X-Series client: it keeps customers, sales and loyalty balances,
answers with the field names of the official 0.9 and 2.0 specifications, and validates requests
at least as strictly as the real API, so that a client bug shows up here and not in a shop. It
shares no code with the gateway's client on purpose: a misreading of the API must not be copied
into both sides of the test.

Money is ``Decimal`` from the request bytes to the response bytes (``parse_float=Decimal`` in,
``common.json_default`` out), because a float anywhere would make loyalty balances drift.

Tokens. An app gets its tokens through OAuth (``gateway.sandbox.oauth``): the consent page at
``/connect``, where ``scope`` is required, then ``POST /api/1.0/token``; each refresh rotates
the refresh token. A static ``token`` (``--token``) stands for a personal token; without one,
any bearer token the sandbox did not issue is taken as a personal token (one it issued is
held to its expiry).

Scopes. Each route needs one, named in ``ROUTE_SCOPES`` (the only table of them); without it
the answer is 403 ``{"error": "permission denied"}``, checked after the token (a bad token
stays 401) and before the request is read or validated, as an API's auth layer does. A token
issued through OAuth holds the scopes its consent asked for; the sandbox-wide scopes
(``create_app(scopes=...)``, ``gateway sandbox xseries --scopes "customers:read ..."``,
space-separated; default: all of ``SCOPES``) are what a personal token holds and the ceiling
of every token: what the store lets apps do now. A test changes them at run time on the
shared sandbox: ``POST /_sandbox/scopes`` with ``{"scopes": "customers:read ..."}`` (``""``:
none), ``GET`` shows them, ``DELETE`` and ``POST /_sandbox/reset`` restore the startup scopes.

Webhooks (``/api/webhooks``, 0.9's form-encoded ``data``) are delivered in the background
(``gateway.sandbox.deliveries``) when a sale, a customer (a loyalty balance too) or a
product changes; ``POST /_sandbox/products/{id}`` changes a product, as the back office would.

The till's afterlife of a sale: ``POST /_sandbox/register_sales/{id}/void`` voids it as the
till does, and a return is a new sale with ``return_for`` and negative quantities, posted to
``/api/register_sales``; what each does to loyalty is decided in ``XSeriesState._apply_loyalty``
and ``_check_return`` (docs/pos-contracts.md, "Refunds, voids, rejects, deletes").
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.sandbox import common
from gateway.sandbox.common import ZERO, ApiResponse, FixtureError, decimal_sum
from gateway.sandbox.controls import ControlsMiddleware, RateLimit, SandboxControls
from gateway.sandbox.deliveries import Deliver, Outbox, deliver_over_http
from gateway.sandbox.oauth import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    AuthorizationServer,
    Issued,
    OAuthError,
    form_pairs,
)

__all__ = [
    "DEMO_FIXTURES",
    "ROUTE_SCOPES",
    "SCOPES",
    "UNSCOPED_ROUTES",
    "FixtureError",
    "create_app",
    "load_fixtures",
    "parse_scopes",
]

DEMO_FIXTURES = Path(__file__).parent / "fixtures" / "xseries_demo.json"

FIXTURE_KEYS = frozenset(
    {
        "config",
        "products",
        "customers",
        "customer_groups",
        "payment_types",
        "register_sales",
        "registers",
        "users",
    }
)
STATUSES = (
    "SAVED",
    "CLOSED",
    "ONACCOUNT",
    "LAYBY",
    "ONACCOUNT_CLOSED",
    "LAYBY_CLOSED",
    "VOIDED",
)
CLOSED_STATUSES = frozenset({"CLOSED", "ONACCOUNT_CLOSED", "LAYBY_CLOSED"})
# Since 2025-09 a sale also has a `state` and attributes (0.9: `register_sale_attributes`)
# that say what `status` says; both spellings are accepted and must agree.
STATE_OF = {
    "SAVED": ("parked", ()),
    "CLOSED": ("closed", ()),
    "VOIDED": ("voided", ()),
    "ONACCOUNT": ("pending", ("onaccount",)),
    "ONACCOUNT_CLOSED": ("closed", ("onaccount",)),
    "LAYBY": ("pending", ("layby",)),
    "LAYBY_CLOSED": ("closed", ("layby",)),
}
# A CONFIRMED line is read-only: what a client may not change about it.
LINE_READ_ONLY = (
    "product_id", "quantity", "price", "tax", "tax_id", "loyalty_value", "discount", "cost",
    "price_set", "status",
)  # fmt: skip
LOYALTY_PAYMENT_TYPE_ID = "106"
# CustomerUpdateBase's string fields: the writable part of a customer besides enable_loyalty.
CUSTOMER_TEXT_FIELDS = (
    "customer_code",
    "customer_group_id",
    "first_name",
    "last_name",
    "company_name",
    "phone",
    "mobile",
    "fax",
    "email",
    "twitter",
    "website",
    "physical_address1",
    "physical_address2",
    "physical_suburb",
    "physical_city",
    "physical_postcode",
    "physical_state",
    "physical_country_id",
    "postal_address1",
    "postal_address2",
    "postal_suburb",
    "postal_city",
    "postal_postcode",
    "postal_state",
    "postal_country_id",
    "date_of_birth",
    "sex",
    "custom_field_1",
    "custom_field_2",
    "custom_field_3",
    "custom_field_4",
    "note",
)
# The 2.0 /search parameters the spec lists: those of every type, then each type's fields
# (its description's "Supported resource types and attributes"). Anything else is a 400
# naming it: a field the real API does not document may be ignored there, and a search
# that silently ignores its filter answers with everybody.
SEARCH_COMMON = ("type", "order_by", "order_direction", "page_size", "offset")
SEARCH_FIELDS = {
    "customers": ("customer_code", "first_name", "last_name", "company_name"),
    "sales": (
        "date_from",
        "date_to",
        "status",
        "invoice_number",
        "customer_id",
        "user_id",
        "outlet_id",
    ),
}
# Documented, but not played here: refused rather than ignored.
SEARCH_NOT_SIMULATED = ("_id", "-_id", "deleted")
ADJUSTMENTS_PATH = "/api/2026-07/loyalty/adjustments/bulk"
# The scopes X-Series documents, and the permission its loyalty adjustments require.
SCOPES = (
    "retailer:read",
    "customers:read",
    "customers:write",
    "products:read",
    "payment_types:read",
    "sales:read",
    "sales:write",
    "webhooks",
    "loyalty.transaction.write",
)
# What each route needs of the token: (method, path) → a scope, or for the 2.0 search the
# scope of what it searches, by its ``type`` (an unknown type needs none: validation refuses
# it). Registers and users are account data, under retailer:read (inferred).
ROUTE_SCOPES: dict[tuple[str, str], str | Mapping[str, str]] = {
    ("GET", "/api/config"): "retailer:read",
    ("GET", "/api/registers"): "retailer:read",
    ("GET", "/api/users"): "retailer:read",
    ("GET", "/api/products"): "products:read",
    ("GET", "/api/products/{id}"): "products:read",
    ("GET", "/api/customers"): "customers:read",
    ("POST", "/api/customers"): "customers:write",
    ("GET", "/api/payment_types"): "payment_types:read",
    ("GET", "/api/register_sales"): "sales:read",
    ("GET", "/api/register_sales/{id}"): "sales:read",
    ("POST", "/api/register_sales"): "sales:write",
    ("GET", "/api/2.0/search"): {"customers": "customers:read", "sales": "sales:read"},
    ("GET", "/api/2.0/sales"): "sales:read",
    ("POST", ADJUSTMENTS_PATH): "loyalty.transaction.write",
    ("GET", "/api/webhooks"): "webhooks",
    ("POST", "/api/webhooks"): "webhooks",
    ("GET", "/api/webhooks/{id}"): "webhooks",
    ("PUT", "/api/webhooks/{id}"): "webhooks",
    ("DELETE", "/api/webhooks/{id}"): "webhooks",
}
# OAuth's own routes: the consent page (on secure.retail.lightspeed.app for real) and the
# token endpoint, which no access token reaches.
CONSENT_PATH = "/connect"
EXCHANGE_PATH = "/api/1.0/token"
UNSCOPED_ROUTES = frozenset(
    {("GET", CONSENT_PATH), ("POST", CONSENT_PATH), ("POST", EXCHANGE_PATH)}
)
# An access token's life. Not documented: the 2025-03 changelog's example says 604800, a
# third-party summary 86400; the shorter is played (a client must refresh either way).
TOKEN_LIFETIME_S = 86400
# The 0.9 spec's webhook types (the dated API has more); the sandbox sends the first three.
WEBHOOK_TYPES = (
    "sale.update",
    "customer.update",
    "product.update",
    "inventory.update",
    "consignment.receive",
)
WEBHOOK_FIELDS = frozenset({"url", "active", "type"})
FORM = "application/x-www-form-urlencoded"
# X-Series wants a 2xx within 5 s (else it retries, which the sandbox does not).
DELIVERY_TIMEOUT_S = 5.0
# What the redirect, the token answer and the webhooks say when the fixtures' config has no
# domain_prefix.
DEFAULT_DOMAIN_PREFIX = "sandbox"
NOT_VALID = "Access token is not valid"
SEARCH_PREFIX_FIELDS = ("first_name", "last_name", "company_name")
# The 2.0 list's parameters (the spec's After, Before, PageSize); the page size's default and
# cap are not documented: those of the 2.0 search are played.
SALES_20_PARAMETERS = ("after", "before", "page_size")


class ApiError(Exception):
    def __init__(self, status: int, error: str, details: str = "") -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = details


def _invalid(field: str, problem: str) -> ApiError:
    return ApiError(400, f"{field} {problem}", "The request was not applied.")


def parse_scopes(value: str | Iterable[str] | None) -> frozenset[str]:
    """Scopes as OAuth writes them, space-separated (or already split); None: all of them.
    A name X-Series does not document is refused: a typo must not look like a missing scope."""
    if value is None:
        return frozenset(SCOPES)
    names = value.split() if isinstance(value, str) else list(value)
    unknown = sorted(set(names) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)} (known: {' '.join(SCOPES)})")
    return frozenset(names)


# -- error bodies and request bodies -------------------------------------------------------------


def _error_response(exc: ApiError) -> Response:
    content = {"error": exc.error}
    if exc.details:
        content["details"] = exc.details
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return ApiResponse(content, status_code=exc.status, headers=headers)


async def _json_object(request: Request) -> dict[str, Any]:
    return common.json_object(
        await request.body(),
        invalid_json=lambda problem: ApiError(400, "Invalid JSON", problem),
        not_an_object=lambda: ApiError(
            400, "Invalid request body", "The body must be a JSON object."
        ),
    )


# -- field readers: each raises ApiError(400) naming the field --------------------------------


# A number is a JSON number or a numeric string, as the real API takes both; never a bool.
_FIELDS = common.FieldReader(_invalid, numeric_strings=True)
_number = _FIELDS.number
_optional_number = _FIELDS.optional_number
_required_number = _FIELDS.required_number


def _optional_str(data: Mapping[str, Any], key: str, where: str = "") -> str | None:
    return _FIELDS.text(data.get(key), common.field_name(where, key))


def _required_str(data: Mapping[str, Any], key: str, where: str = "") -> str:
    value = _optional_str(data, key, where)
    if not value:
        raise _invalid(common.field_name(where, key), "is required")
    return value


def _optional_int(data: Mapping[str, Any], key: str, where: str = "") -> int | None:
    value = _optional_number(data, key, where)
    if value is None:
        return None
    if value != value.to_integral_value():
        raise _invalid(common.field_name(where, key), "must be an integer")
    return int(value)


def _bit(value: object, field: str) -> int:
    """0/1 fields such as enable_loyalty: 0, 1, "0", "1", false or true."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if value in ("0", "1"):
        return int(str(value))
    raise _invalid(field, "must be 0 or 1")


def _flag(value: object) -> bool:
    """Account flags arrive as true/false, 1/0 or "1"/"0"; accept all of them."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(key, "must be an array")
    return value


# -- time ----------------------------------------------------------------------------------------


def _fmt_09(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _fmt_20(stamp: str) -> str | None:
    """Stored stamps are 0.9-formatted UTC; 2.0 speaks ISO 8601 with a Z."""
    parsed = common.parse_utc(stamp) if stamp else None
    return parsed.strftime("%Y-%m-%dT%H:%M:%SZ") if parsed else None


def _time_09(value: str, field: str) -> str:
    parsed = common.parse_utc(value)
    if parsed is None:
        raise _invalid(field, "must be an RFC 3339 date-time or YYYY-MM-DD HH:MM:SS")
    return _fmt_09(parsed)


def _query_time(params: QueryParams, key: str) -> str | None:
    raw = params.get(key)
    if raw is None:
        return None
    parsed = common.parse_utc(raw)
    if parsed is None:
        raise ApiError(400, f"{key} must be an ISO 8601 date-time", f"{key}={raw!r}")
    return _fmt_09(parsed)


# -- query helpers -------------------------------------------------------------------------------


def _query_int(params: QueryParams, key: str, default: int, minimum: int) -> int:
    raw = params.get(key)
    if raw is None:
        return default
    try:
        value: int | None = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ApiError(400, f"{key} must be an integer >= {minimum}", f"{key}={raw!r}")
    return value


def _paginated(key: str, items: list[Any], params: QueryParams) -> dict[str, Any]:
    page = _query_int(params, "page", 1, 1)
    size = min(_query_int(params, "page_size", 100, 1), 200)
    start = (page - 1) * size
    pagination = {
        "results": len(items),
        "page": page,
        "page_size": size,
        "pages": max(1, math.ceil(len(items) / size)),
    }
    return {key: items[start : start + size], "pagination": pagination}


def _full_name(customer: Mapping[str, Any]) -> str:
    return f"{customer['first_name']} {customer['last_name']}".strip()


def _balance_text(value: Decimal) -> str:
    """0.9 sends balances as strings with five decimals, e.g. "50.00000"."""
    return format(value.quantize(Decimal("0.00001"), ROUND_HALF_UP), "f")


def _new_id() -> str:
    return str(uuid.uuid4())


# -- the state -----------------------------------------------------------------------------------


class XSeriesState:
    """One retailer's data and the rules that change it; built whole from fixtures.

    Every method that changes something validates the whole request first and only then
    mutates, so a 400 leaves the state exactly as it was. Each change of a sale, a customer
    or a product is noted in ``changes`` (webhook type, id), for the webhooks.
    """

    def __init__(self, fixtures: object, now: datetime) -> None:
        data = common.fixture_data(fixtures, FIXTURE_KEYS)
        config = {} if data.get("config") is None else data["config"]
        if not isinstance(config, dict):
            raise FixtureError("config must be an object")
        if not isinstance(config.get("domain_prefix", ""), str):
            raise FixtureError("config.domain_prefix must be a string")
        self.config: dict[str, Any] = config
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.changes: list[tuple[str, str]] = []
        self.customer_groups = _by_id(data, "customer_groups")
        self.products = _by_id(data, "products")
        self.payment_types = _by_id(data, "payment_types")
        self.registers = _by_id(data, "registers")
        self.users = _by_id(data, "users")
        self.customers: dict[str, dict[str, Any]] = {}
        self.sales: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, tuple[Any, int, dict[str, Any]]] = {}
        self.version = 0
        self.taxes = _tax_index(self.products.values())
        stamp = _fmt_09(now)
        where = "fixtures"
        try:
            for product in self.products.values():
                where = f"products {product['id']}"
                updated_at = _optional_str(product, "updated_at") or stamp
                product["updated_at"] = _time_09(updated_at, "updated_at")
            for raw in _by_id(data, "customers").values():
                where = f"customers {raw['id']}"
                self.customers[raw["id"]] = self._customer_from_fixture(raw, stamp)
            for raw in _by_id(data, "register_sales").values():
                where = f"register_sales {raw['id']}"
                self.sales[raw["id"]] = self._sale_from_fixture(raw, now)
        except ApiError as exc:
            raise FixtureError(f"{where}: {exc.error}") from None

    def next_version(self) -> int:
        self.version += 1
        return self.version

    # -- customers --

    def _customer_from_fixture(self, raw: dict[str, Any], stamp: str) -> dict[str, Any]:
        customer = self._blank_customer(raw["id"], stamp)
        for key in CUSTOMER_TEXT_FIELDS:
            customer[key] = _optional_str(raw, key) or customer[key]
        customer["enable_loyalty"] = _bit(raw.get("enable_loyalty", 0), "enable_loyalty")
        for key in ("loyalty_balance", "balance", "year_to_date"):
            customer[key] = _optional_number(raw, key) or ZERO
        for key in ("created_at", "updated_at"):
            customer[key] = _time_09(_optional_str(raw, key) or stamp, key)
        customer["deleted_at"] = _optional_str(raw, "deleted_at") or ""
        if not customer["customer_code"]:
            customer["customer_code"] = self._new_code(customer)
        if self._code_owner(customer["customer_code"]) is not None:
            raise _invalid("customer_code", "is already used by another customer")
        return customer

    def _blank_customer(self, customer_id: str, stamp: str) -> dict[str, Any]:
        customer: dict[str, Any] = dict.fromkeys(CUSTOMER_TEXT_FIELDS, "")
        customer.update(
            id=customer_id,
            customer_group_id=self.config.get("default_customer_group_id") or "",
            enable_loyalty=0,
            loyalty_balance=ZERO,
            balance=ZERO,
            year_to_date=ZERO,
            created_at=stamp,
            updated_at=stamp,
            deleted_at="",
            version=self.next_version(),
        )
        return customer

    def _new_code(self, customer: Mapping[str, Any]) -> str:
        base = re.sub(r"[^A-Z0-9]", "", f"{customer['first_name']}{customer['last_name']}".upper())
        base = base[:12] or "CUSTOMER"
        code, n = base, 1
        while self._code_owner(code) is not None:
            n += 1
            code = f"{base}-{n}"
        return code

    def _code_owner(self, code: str) -> str | None:
        for customer in self.customers.values():
            if customer["customer_code"].lower() == code.lower():
                return str(customer["id"])
        return None

    def save_customer(self, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """POST /api/customers: create, or update when ``id`` is given; loyalty_balance is
        deliberately not writable here, as on the real API."""
        customer_id = _optional_str(body, "id")
        existing = None
        if customer_id:
            existing = self.customers.get(customer_id)
            if existing is None:
                raise ApiError(404, "Not Found", f"No customer with id {customer_id!r}")
        changes: dict[str, Any] = {}
        for key in CUSTOMER_TEXT_FIELDS:
            if key in body:
                changes[key] = _optional_str(body, key) or ""
        if body.get("enable_loyalty") is not None:
            changes["enable_loyalty"] = _bit(body["enable_loyalty"], "enable_loyalty")
        stamp = _fmt_09(now)
        customer = dict(existing or self._blank_customer(_new_id(), stamp))
        customer.update(changes)
        if not (customer["first_name"] or customer["last_name"]):
            raise _invalid("first_name", "or last_name is required")
        group = customer["customer_group_id"]
        if group and self.customer_groups and group not in self.customer_groups:
            raise _invalid("customer_group_id", "is not a known customer group")
        if existing is not None and "customer_code" in changes and not changes["customer_code"]:
            raise _invalid("customer_code", "must not be empty")
        if not customer["customer_code"]:
            customer["customer_code"] = self._new_code(customer)
        owner = self._code_owner(customer["customer_code"])
        if owner is not None and owner != customer["id"]:
            raise _invalid("customer_code", "is already used by another customer")
        customer["updated_at"] = stamp
        customer["version"] = self.next_version()
        self.customers[customer["id"]] = customer
        self.changes.append(("customer.update", customer["id"]))
        return customer

    def _credit(self, customer: dict[str, Any], amount: Decimal, now: datetime) -> None:
        customer["loyalty_balance"] += amount
        customer["updated_at"] = _fmt_09(now)
        customer["version"] = self.next_version()
        self.changes.append(("customer.update", customer["id"]))

    def render_customer_09(self, customer: Mapping[str, Any]) -> dict[str, Any]:
        group = self.customer_groups.get(customer["customer_group_id"], {})
        rendered: dict[str, Any] = {"id": customer["id"]}
        rendered.update((key, customer[key]) for key in CUSTOMER_TEXT_FIELDS)
        rendered.update(
            name=_full_name(customer),
            customer_group_name=group.get("name", ""),
            enable_loyalty=customer["enable_loyalty"],
            loyalty_balance=_balance_text(customer["loyalty_balance"]),
            balance=_balance_text(customer["balance"]),
            year_to_date=_balance_text(customer["year_to_date"]),
            contact={key: customer[key] for key in ("company_name", "phone", "email")},
            updated_at=customer["updated_at"],
            deleted_at=customer["deleted_at"],
        )
        return rendered

    def render_customer_20(self, customer: Mapping[str, Any]) -> dict[str, Any]:
        def text(key: str) -> str | None:
            return customer[key] or None

        return {
            "id": customer["id"],
            "customer_code": customer["customer_code"],
            "customer_group_id": customer["customer_group_id"],
            "first_name": customer["first_name"],
            "last_name": customer["last_name"],
            "email": text("email"),
            "company_name": text("company_name"),
            "phone": text("phone"),
            "mobile": text("mobile"),
            "note": text("note"),
            "enable_loyalty": customer["enable_loyalty"] == 1,
            "loyalty_balance": customer["loyalty_balance"],
            "balance": customer["balance"],
            "year_to_date": customer["year_to_date"],
            "created_at": _fmt_20(customer["created_at"]),
            "updated_at": _fmt_20(customer["updated_at"]),
            "version": customer["version"],
        }

    # -- sales: validation --

    def is_loyalty(self, payment_type_id: str) -> bool:
        payment_type = self.payment_types.get(payment_type_id, {})
        return str(payment_type.get("payment_type_id")) == LOYALTY_PAYMENT_TYPE_ID

    def parse_sale(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a RegisterSaleUpdateBase; keys absent from the body stay absent."""
        user_id = _required_str(body, "user_id")
        status = _required_str(body, "status")
        if status not in STATUSES:
            raise _invalid("status", f"must be one of {', '.join(STATUSES)}")
        register_id = _required_str(body, "register_id")
        if register_id not in self.registers:
            raise _invalid("register_id", "is not a known register")
        if user_id not in self.users:
            raise _invalid("user_id", "is not a known user")
        sale: dict[str, Any] = {"user_id": user_id, "status": status, "register_id": register_id}
        if "customer_id" in body:
            customer_id = _optional_str(body, "customer_id") or ""
            if customer_id and customer_id not in self.customers:
                raise _invalid("customer_id", "is not a known customer")
            sale["customer_id"] = customer_id
        sale_date = _optional_str(body, "sale_date")
        if sale_date:
            sale["sale_date"] = _time_09(sale_date, "sale_date")
        for key in (
            "note",
            "short_code",
            "invoice_number",
            "source_id",
            "accounts_transaction_id",
            "return_for",
        ):
            value = _optional_str(body, key)
            if value is not None:
                sale[key] = value
        sale.update(_state_and_attributes(body, status))
        lines = _list(body, "register_sale_products")
        payments = _list(body, "register_sale_payments")
        sale["lines"] = [
            self._parse_line(item, f"register_sale_products[{i}]") for i, item in enumerate(lines)
        ]
        sale["payments"] = [
            self._parse_payment(item, f"register_sale_payments[{i}]")
            for i, item in enumerate(payments)
        ]
        return sale

    def _parse_line(self, item: object, where: str) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise _invalid(where, "must be an object")
        product_id = _required_str(item, "product_id", where)
        if product_id not in self.products:
            raise _invalid(f"{where}.product_id", "is not a known product")
        quantity = _required_number(item, "quantity", where)
        if quantity == 0:
            raise _invalid(f"{where}.quantity", "must not be 0")
        loyalty_value = _optional_number(item, "loyalty_value", where) or ZERO
        if loyalty_value < 0:
            raise _invalid(f"{where}.loyalty_value", "must be >= 0")
        price_set = item.get("price_set")
        return {
            "id": _optional_str(item, "id", where) or None,
            "product_id": product_id,
            "register_id": _optional_str(item, "register_id", where) or None,
            "sequence": _optional_int(item, "sequence", where),
            "quantity": quantity,
            "price": _required_number(item, "price", where),
            "tax": _required_number(item, "tax", where),
            "tax_id": _required_str(item, "tax_id", where),
            "loyalty_value": loyalty_value,
            "discount": _optional_number(item, "discount", where) or ZERO,
            "cost": _optional_number(item, "cost", where) or ZERO,
            "price_set": 0 if price_set is None else _bit(price_set, f"{where}.price_set"),
            "status": _optional_str(item, "status", where) or "CONFIRMED",
            "note": _optional_str(item, "note", where) or "",
        }

    def _parse_payment(self, item: object, where: str) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise _invalid(where, "must be an object")
        payment_type_id = _required_str(item, "retailer_payment_type_id", where)
        if payment_type_id not in self.payment_types:
            raise _invalid(f"{where}.retailer_payment_type_id", "is not a known payment type")
        amount = _required_number(item, "amount", where)
        if self.is_loyalty(payment_type_id) and amount <= 0:
            # Loyalty is never refunded as loyalty (a return's refund is another tender).
            raise _invalid(f"{where}.amount", "must be > 0 for a loyalty payment")
        payment_date = _optional_str(item, "payment_date", where)
        return {
            "id": _optional_str(item, "id", where) or None,
            "register_id": _optional_str(item, "register_id", where) or None,
            "retailer_payment_type_id": payment_type_id,
            "payment_date": _time_09(payment_date, f"{where}.payment_date")
            if payment_date
            else None,
            "amount": amount,
        }

    # -- sales: changes --

    def save_sale(self, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """POST /api/register_sales, with the docs' "editing sales" and loyalty rules."""
        sale_id = _optional_str(body, "id")
        existing = None
        if sale_id:
            existing = self.sales.get(sale_id)
            if existing is None:
                raise ApiError(404, "Not Found", f"No register sale with id {sale_id!r}")
        fields = self.parse_sale(body)
        old_status = existing["status"] if existing else None
        status = fields["status"]
        if old_status == "VOIDED":
            raise ApiError(400, "sale is voided", "A VOIDED sale cannot be changed.")
        if old_status in CLOSED_STATUSES and status != "VOIDED":
            raise ApiError(400, "sale is closed", f"A {old_status} sale can only be VOIDED.")
        returned = self._returned_sale(existing, fields)
        lines = _merge_lines(existing, fields["lines"])
        payments, new_payments = _merge_payments(existing, fields["payments"])
        customer_id = fields.get("customer_id", existing["customer_id"] if existing else "")
        if existing and customer_id != existing["customer_id"] and self._touches_loyalty(existing):
            raise _invalid(
                "customer_id", "cannot change on a sale with loyalty payments or earnings"
            )
        if returned is not None and status != "VOIDED":
            self._check_return(returned, sale_id, customer_id, lines, payments)
        if existing is not None and status == "VOIDED":
            self._check_voidable(existing)
        customer = self.customers.get(customer_id)
        spent = self._loyalty_paid(new_payments)
        if spent and customer is None:
            raise ApiError(
                400,
                "Insufficient loyalty balance",
                "A loyalty payment needs a customer on the sale.",
            )
        if customer is not None and spent > customer["loyalty_balance"]:
            raise ApiError(
                400,
                "Insufficient loyalty balance",
                f"Loyalty payments of {spent} exceed the customer's balance of "
                f"{_balance_text(customer['loyalty_balance'])}.",
            )
        sale = self._record(sale_id or _new_id(), fields, lines, payments, existing, now)
        self._apply_loyalty(sale, old_status, spent, customer, now)
        self.sales[sale["id"]] = sale
        self.changes.append(("sale.update", sale["id"]))
        return sale

    def void_sale(self, sale_id: str, now: datetime) -> dict[str, Any]:
        """The till voiding a sale, open or closed, as a POST of it with status VOIDED would:
        the same checks and the same loyalty effects (``_apply_loyalty``)."""
        existing = self.sales.get(sale_id)
        if existing is None:
            raise ApiError(404, "Not Found", f"No register sale with id {sale_id!r}")
        if existing["status"] == "VOIDED":
            raise ApiError(400, "sale is voided", "A VOIDED sale cannot be changed.")
        self._check_voidable(existing)
        state, _ = STATE_OF["VOIDED"]
        fields = {
            "status": "VOIDED",
            "state": state,
            "attributes": [a for a in existing["attributes"] if a not in ("onaccount", "layby")],
            "register_id": existing["register_id"],
            "user_id": existing["user_id"],
        }
        sale = self._record(sale_id, fields, existing["lines"], existing["payments"], existing, now)
        self._apply_loyalty(
            sale, existing["status"], ZERO, self.customers.get(sale["customer_id"]), now
        )
        self.sales[sale_id] = sale
        self.changes.append(("sale.update", sale_id))
        return sale

    def _apply_loyalty(
        self,
        sale: dict[str, Any],
        old_status: str | None,
        spent: Decimal,
        customer: dict[str, Any] | None,
        now: datetime,
    ) -> None:
        """What X-Series does to a balance itself, the one place the sandbox decides it
        (inferred but for the payment: docs/pos-contracts.md, "Refunds, voids, rejects,
        deletes"). A new Loyalty payment lowers it by its amount. A sale earns its lines'
        loyalty (Σ ``loyalty_value`` × quantity) once, when it closes; a return's negative
        quantities make that negative, so closing a return lowers the balance by what its
        lines take back, below zero if need be. Voiding takes back what the sale earned (a
        voided return gives back what it took) and returns every Loyalty payment it had."""
        earned = sale["loyalty_earned"]
        delta = -spent
        if sale["status"] in CLOSED_STATUSES and old_status not in CLOSED_STATUSES:
            earned = self._line_loyalty(sale["lines"]) if self._earns(customer) else ZERO
            delta += earned
        if sale["status"] == "VOIDED":
            delta += self._loyalty_paid(sale["payments"]) - earned
            earned = ZERO
        sale["loyalty_earned"] = earned
        if customer is not None and delta:
            self._credit(customer, delta, now)

    # -- returns --

    def _returned_sale(
        self, existing: Mapping[str, Any] | None, fields: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The sale a return is for: ``return_for`` is set when the return is created, and
        sent back unchanged (or left out) after."""
        sent = fields.get("return_for")
        if existing is not None:
            if sent is not None and sent != existing["return_for"]:
                raise _invalid("return_for", "cannot change")
            sent = existing["return_for"]
        if not sent:
            return None
        returned = self.sales.get(sent)
        if returned is None:
            raise _invalid("return_for", "is not a known sale")
        return returned

    def _returns_of(self, sale_id: str, but: str | None = None) -> list[dict[str, Any]]:
        """The returns of a sale that stand (not voided), but one."""
        return [
            other
            for other in self.sales.values()
            if other["return_for"] == sale_id and other["status"] != "VOIDED" and other["id"] != but
        ]

    def _check_return(
        self,
        returned: Mapping[str, Any],
        sale_id: str | None,
        customer_id: str,
        lines: list[dict[str, Any]],
        payments: list[dict[str, Any]],
    ) -> None:
        """A return, as the sandbox takes one (inferred): of a closed sale that is not itself
        a return, for the same customer, every line a negative quantity of a product the
        sale sold, in all its returns no more than it sold; and no Loyalty payment, since
        loyalty is never refunded as loyalty (a negative one is refused for every sale by
        ``_parse_payment``): the refund goes out in another tender, and the loyalty the
        sale was paid with stays spent."""
        if returned["status"] not in CLOSED_STATUSES:
            raise _invalid("return_for", f"names a {returned['status']} sale: only a closed one")
        if returned["return_for"]:
            raise _invalid("return_for", "names a return, which cannot be returned")
        if customer_id != returned["customer_id"]:
            raise _invalid("customer_id", "must be the customer of the sale returned")
        left: dict[str, Decimal] = {}
        for line in returned["lines"]:
            left[line["product_id"]] = left.get(line["product_id"], ZERO) + line["quantity"]
        for other in self._returns_of(returned["id"], but=sale_id):
            for line in other["lines"]:
                left[line["product_id"]] = left.get(line["product_id"], ZERO) + line["quantity"]
        for i, line in enumerate(lines):
            where = f"register_sale_products[{i}]"
            if line["quantity"] >= 0:
                raise _invalid(f"{where}.quantity", "must be negative on a return")
            if line["product_id"] not in left:
                raise _invalid(f"{where}.product_id", "is not a product of the sale returned")
            left[line["product_id"]] += line["quantity"]
            if left[line["product_id"]] < 0:
                raise _invalid(f"{where}.quantity", "returns more than the sale has left to return")
        for i, payment in enumerate(payments):
            if self.is_loyalty(payment["retailer_payment_type_id"]):
                raise _invalid(
                    f"register_sale_payments[{i}].retailer_payment_type_id",
                    "is Loyalty: a return is not paid or refunded with loyalty",
                )

    def _check_voidable(self, sale: Mapping[str, Any]) -> None:
        """A sale with a return that stands cannot be voided (inferred): voiding it would
        take back its loyalty a second time. Void the returns first."""
        returns = self._returns_of(sale["id"])
        if returns:
            raise ApiError(
                400,
                "sale has returns",
                f"Void its returns first: {', '.join(r['id'] for r in returns)}.",
            )

    def _sale_from_fixture(self, raw: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Fixture sales are taken as they are: loading them changes no balance."""
        fields = self.parse_sale(raw)
        sale = self._record(raw["id"], fields, fields["lines"], fields["payments"], None, now)
        for key in ("created_at", "updated_at"):
            sale[key] = _time_09(_optional_str(raw, key) or sale["sale_date"], key)
        customer = self.customers.get(sale["customer_id"])
        if sale["status"] in CLOSED_STATUSES and self._earns(customer):
            sale["loyalty_earned"] = self._line_loyalty(sale["lines"])
        return sale

    def _record(
        self,
        sale_id: str,
        fields: Mapping[str, Any],
        lines: list[dict[str, Any]],
        payments: list[dict[str, Any]],
        existing: Mapping[str, Any] | None,
        now: datetime,
    ) -> dict[str, Any]:
        """The stored sale: what the body says, else what was stored, else server defaults."""
        old: Mapping[str, Any] = existing or {}
        stamp = _fmt_09(now)
        register_id = fields["register_id"]
        sale_date = fields.get("sale_date") or old.get("sale_date") or stamp
        for i, line in enumerate(lines):
            line["id"] = line["id"] or _new_id()
            line["sequence"] = i if line["sequence"] is None else line["sequence"]
            line["register_id"] = line["register_id"] or register_id
        for payment in payments:
            payment["id"] = payment["id"] or _new_id()
            payment["register_id"] = payment["register_id"] or register_id
            payment["payment_date"] = payment["payment_date"] or (stamp if existing else sale_date)
        return {
            "id": sale_id,
            "source_id": fields.get("source_id", old.get("source_id", "")),
            "register_id": register_id,
            "customer_id": fields.get("customer_id", old.get("customer_id", "")),
            "user_id": fields["user_id"],
            "sale_date": sale_date,
            "created_at": old.get("created_at", stamp),
            "updated_at": stamp,
            "note": fields.get("note", old.get("note", "")),
            "status": fields["status"],
            "state": fields["state"],
            "attributes": fields["attributes"],
            "short_code": fields.get("short_code") or old.get("short_code") or _new_id()[:6],
            "invoice_number": fields.get("invoice_number")
            or old.get("invoice_number")
            or self._next_invoice(register_id),
            "accounts_transaction_id": fields.get(
                "accounts_transaction_id", old.get("accounts_transaction_id", "")
            ),
            "return_for": old.get("return_for", fields.get("return_for", "")),
            "lines": lines,
            "payments": payments,
            "loyalty_earned": old.get("loyalty_earned", ZERO),
            "version": self.next_version(),
        }

    def _next_invoice(self, register_id: str) -> str:
        register = self.registers[register_id]
        sequence = _number(register.get("invoice_sequence") or 0, "invoice_sequence") + 1
        register["invoice_sequence"] = int(sequence)
        prefix, suffix = register.get("invoice_prefix") or "", register.get("invoice_suffix") or ""
        return f"{prefix}{int(sequence)}{suffix}"

    def _earns(self, customer: Mapping[str, Any] | None) -> bool:
        account_on = _flag(self.config.get("enable_loyalty"))
        return account_on and customer is not None and customer["enable_loyalty"] == 1

    def _loyalty_paid(self, payments: list[dict[str, Any]]) -> Decimal:
        return decimal_sum(
            p["amount"] for p in payments if self.is_loyalty(p["retailer_payment_type_id"])
        )

    def _touches_loyalty(self, sale: Mapping[str, Any]) -> bool:
        return bool(sale["loyalty_earned"] or self._loyalty_paid(sale["payments"]))

    @staticmethod
    def _line_loyalty(lines: list[dict[str, Any]]) -> Decimal:
        return decimal_sum(line["loyalty_value"] * line["quantity"] for line in lines)

    # -- sales: rendering --

    def _tax(self, tax_id: str) -> tuple[Any, Any]:
        return self.taxes.get(tax_id, ("", ZERO))

    def render_sale_09(self, sale: Mapping[str, Any]) -> dict[str, Any]:
        lines = [self._line_09(line) for line in sale["lines"]]
        total_price = decimal_sum(line["price_total"] for line in lines)
        total_tax = decimal_sum(line["tax_total"] for line in lines)
        total_payment = decimal_sum(payment["amount"] for payment in sale["payments"])
        customer = self.customers.get(sale["customer_id"])
        user = self.users.get(sale["user_id"], {})
        return {
            "id": sale["id"],
            "source_id": sale["source_id"],
            "register_id": sale["register_id"],
            "customer_id": sale["customer_id"],
            "customer_name": _full_name(customer) if customer else "",
            "user_id": sale["user_id"],
            "user_name": user.get("username") or user.get("name") or "",
            "sale_date": sale["sale_date"],
            "created_at": sale["created_at"],
            "updated_at": sale["updated_at"],
            "total_price": total_price,
            "total_tax": total_tax,
            "note": sale["note"],
            "status": sale["status"],
            "state": sale["state"],
            "register_sale_attributes": list(sale["attributes"]),
            "short_code": sale["short_code"],
            "invoice_number": sale["invoice_number"],
            "return_for": sale["return_for"],
            "accounts_transaction_id": sale["accounts_transaction_id"],
            "register_sale_products": lines,
            "register_sale_payments": [self._payment_09(p) for p in sale["payments"]],
            "totals": {
                "total_price": total_price,
                "total_tax": total_tax,
                "total_payment": total_payment,
                "total_to_pay": total_price + total_tax - total_payment,
            },
            "taxes": self._sale_taxes(sale["lines"]),
        }

    def _line_09(self, line: Mapping[str, Any]) -> dict[str, Any]:
        product = self.products.get(line["product_id"], {})
        tax_name, tax_rate = self._tax(line["tax_id"])
        return {
            "id": line["id"],
            "product_id": line["product_id"],
            "register_id": line["register_id"],
            "sequence": line["sequence"],
            "handle": product.get("handle", ""),
            "sku": product.get("sku", ""),
            "name": product.get("name", ""),
            "quantity": line["quantity"],
            "price": line["price"],
            "cost": line["cost"],
            "price_set": line["price_set"],
            "discount": line["discount"],
            "loyalty_value": line["loyalty_value"],
            "tax": line["tax"],
            "tax_id": line["tax_id"],
            "tax_name": tax_name,
            "tax_rate": tax_rate,
            "price_total": line["price"] * line["quantity"],
            "tax_total": line["tax"] * line["quantity"],
            "status": line["status"],
            "note": line["note"],
        }

    def _payment_09(self, payment: Mapping[str, Any]) -> dict[str, Any]:
        payment_type = self.payment_types.get(payment["retailer_payment_type_id"], {})
        name = payment_type.get("name", "")
        return {
            "id": payment["id"],
            "register_id": payment["register_id"],
            "retailer_payment_type_id": payment["retailer_payment_type_id"],
            "payment_type_id": str(payment_type.get("payment_type_id", "")),
            "name": name,
            "label": name,
            "payment_date": payment["payment_date"],
            "amount": payment["amount"],
        }

    def _sale_taxes(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        totals: dict[str, Decimal] = {}
        for line in lines:
            totals[line["tax_id"]] = (
                totals.get(line["tax_id"], ZERO) + line["tax"] * line["quantity"]
            )
        taxes = []
        for tax_id, amount in totals.items():
            name, rate = self._tax(tax_id)
            taxes.append({"id": tax_id, "name": name, "rate": rate, "tax": amount})
        return taxes

    def render_sale_20(self, sale: Mapping[str, Any]) -> dict[str, Any]:
        payment_types = self.payment_types
        register = self.registers.get(sale["register_id"], {})
        lines = sale["lines"]
        return {
            "id": sale["id"],
            "outlet_id": register.get("outlet_id"),
            "register_id": sale["register_id"],
            "user_id": sale["user_id"],
            "customer_id": sale["customer_id"] or None,
            "invoice_number": sale["invoice_number"],
            "source_id": sale["source_id"] or None,
            "status": sale["status"],
            "note": sale["note"],
            "short_code": sale["short_code"],
            "return_for": sale["return_for"] or None,
            "total_price": decimal_sum(line["price"] * line["quantity"] for line in lines),
            "total_tax": decimal_sum(line["tax"] * line["quantity"] for line in lines),
            "total_loyalty": self._line_loyalty(lines),
            "sale_date": _fmt_20(sale["sale_date"]),
            "created_at": _fmt_20(sale["created_at"]),
            "updated_at": _fmt_20(sale["updated_at"]),
            "version": sale["version"],
            "line_items": [
                {
                    "id": line["id"],
                    "product_id": line["product_id"],
                    "quantity": line["quantity"],
                    "price": line["price"],
                    "price_total": line["price"] * line["quantity"],
                    "tax": line["tax"],
                    "tax_id": line["tax_id"],
                    "tax_total": line["tax"] * line["quantity"],
                    "loyalty_value": line["loyalty_value"],
                    "total_loyalty_value": line["loyalty_value"] * line["quantity"],
                    "status": line["status"],
                }
                for line in lines
            ],
            "payments": [
                {
                    "id": p["id"],
                    "retailer_payment_type_id": p["retailer_payment_type_id"],
                    "payment_type_id": str(
                        payment_types.get(p["retailer_payment_type_id"], {}).get(
                            "payment_type_id", ""
                        )
                    ),
                    "name": payment_types.get(p["retailer_payment_type_id"], {}).get("name", ""),
                    "amount": p["amount"],
                    "payment_date": _fmt_20(p["payment_date"]),
                }
                for p in sale["payments"]
            ],
        }

    # -- products, webhooks and what the webhooks send --

    @property
    def domain_prefix(self) -> str:
        return str(self.config.get("domain_prefix") or DEFAULT_DOMAIN_PREFIX)

    def update_product(
        self, product_id: str, changes: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        """What the back office does to a product (the API the gateway uses has no product
        write): the fields given replace the stored ones."""
        product = self.products.get(product_id)
        if product is None:
            raise ApiError(404, "Not Found", f"No product with id {product_id!r}")
        fixed = sorted({"id", "updated_at"} & set(changes))
        if fixed:
            raise _invalid(fixed[0], "is set by the sandbox")
        product.update(common.plain(changes, "product"))
        product["updated_at"] = _fmt_09(now)
        self.taxes = _tax_index(self.products.values())
        self.changes.append(("product.update", product_id))
        return product

    def take_changes(self) -> list[tuple[str, str]]:
        """What changed since the last call, each once, in order."""
        changes, self.changes = list(dict.fromkeys(self.changes)), []
        return changes

    def rendered(self, kind: str, object_id: str) -> dict[str, Any]:
        """An object as the 0.9 API returns it, which is what its webhook sends."""
        if kind == "sale.update":
            return self.render_sale_09(self.sales[object_id])
        if kind == "customer.update":
            return self.render_customer_09(self.customers[object_id])
        return self.products[object_id]

    def webhook(self, webhook_id: str, client_id: str) -> dict[str, Any]:
        """Another app's webhook is not found, as it is not listed."""
        webhook = self.webhooks.get(webhook_id)
        if webhook is None or webhook["client_id"] != client_id:
            raise ApiError(404, "Not Found", f"No webhook with id {webhook_id!r}")
        return webhook

    def save_webhook(
        self, data: Mapping[str, Any], client_id: str, webhook_id: str | None = None
    ) -> dict[str, Any]:
        """Creates (no ``webhook_id``: ``url`` and ``type`` required) or updates one."""
        old = self.webhook(webhook_id, client_id) if webhook_id else None
        webhook: dict[str, Any] = (
            dict(old) if old else {"id": _new_id(), "client_id": client_id, "active": True}
        )
        webhook.update(_webhook_fields(data, partial=old is not None))
        key = (client_id, webhook["type"], webhook["url"])
        for other in self.webhooks.values():
            same = (other["client_id"], other["type"], other["url"]) == key
            if same and other["id"] != webhook["id"]:
                raise ApiError(
                    409,
                    "A webhook of this type already exists for this URL",
                    f"Webhook {other['id']} has type {other['type']} and URL {other['url']}.",
                )
        self.webhooks[webhook["id"]] = webhook
        return webhook

    def render_webhook(self, webhook: Mapping[str, Any]) -> dict[str, Any]:
        """The 0.9 ``Webhook``."""
        rendered = {key: webhook[key] for key in ("id", "url", "active", "type")}
        return {**rendered, "retailer_id": str(self.config.get("retailer_id", ""))}

    # -- loyalty adjustments (2026-07 beta) --

    def adjust(self, body: Mapping[str, Any], now: datetime) -> tuple[int, dict[str, Any]]:
        """Applied once per session_id: a replay answers the first response and changes nothing."""
        session_id = _required_str(body, "session_id")
        try:
            uuid.UUID(session_id)
        except ValueError:
            raise _invalid("session_id", "must be a UUID") from None
        items = _list(body, "adjustments")
        if not items:
            raise _invalid("adjustments", "must be a non-empty array")
        request = [_parse_adjustment(item, f"adjustments[{i}]") for i, item in enumerate(items)]
        previous = self.sessions.get(session_id)
        if previous is not None:
            if previous[0] != request:
                raise ApiError(
                    409,
                    "session_id was already used with different adjustments",
                    f"session_id {session_id!r}",
                )
            return previous[1], previous[2]
        applied, errors = [], []
        for customer_id, kind, amount, _reason in request:
            customer = self.customers.get(customer_id)
            if customer is None:
                errors.append({"customer_id": customer_id, "error": "customer not found"})
                continue
            if kind == "debit" and amount > customer["loyalty_balance"]:
                errors.append({"customer_id": customer_id, "error": "insufficient loyalty balance"})
                continue
            self._credit(customer, amount if kind == "credit" else -amount, now)
            applied.append({"customer_id": customer_id, "balance": customer["loyalty_balance"]})
        status = 207 if errors else 200
        content = {"applied": applied, "errors": errors}
        self.sessions[session_id] = (request, status, content)
        return status, content


def _is_id(value: object) -> TypeGuard[str]:
    """X-Series ids are non-empty strings (UUIDs, but fixtures may use anything readable)."""
    return isinstance(value, str) and bool(value)


def _by_id(data: Mapping[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return common.fixture_records(data, key, _is_id, "a string id")


def _tax_index(products: Any) -> dict[str, tuple[Any, Any]]:
    """Tax names and rates as the products and price books name them (0.9 has no tax fixture)."""
    taxes: dict[str, tuple[Any, Any]] = {}
    for product in products:
        entries = product.get("price_book_entries")
        for source in [product, *(entries if isinstance(entries, list) else [])]:
            if isinstance(source, dict) and source.get("tax_id"):
                taxes.setdefault(
                    source["tax_id"], (source.get("tax_name", ""), source.get("tax_rate", ZERO))
                )
    return taxes


def _merge_lines(
    existing: Mapping[str, Any] | None, lines: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Lines with an id replace that line, lines without one are new, the rest are deleted;
    but a CONFIRMED line is read-only (the spec's words): sent back changed, or left out,
    it is refused, not silently kept, so a client that rewrites it finds out here."""
    stored = {line["id"]: line for line in existing["lines"]} if existing else {}
    seen: set[str] = set()
    for i, line in enumerate(lines):
        if line["id"] is None:
            continue
        if line["id"] not in stored or line["id"] in seen:
            raise _invalid(f"register_sale_products[{i}].id", "is not a line of this sale")
        seen.add(line["id"])
        before = stored[line["id"]]
        if before["status"] == "CONFIRMED":
            changed = [key for key in LINE_READ_ONLY if line[key] != before[key]]
            if changed:
                raise _invalid(
                    f"register_sale_products[{i}].{changed[0]}",
                    "cannot change: the line is CONFIRMED (read-only)",
                )
    removed = [key for key, line in stored.items() if line["status"] == "CONFIRMED"
               and key not in seen]  # fmt: skip
    if removed:
        raise ApiError(
            400,
            "register_sale_products: a CONFIRMED line cannot be removed",
            f"Missing lines: {', '.join(removed)}",
        )
    return lines


def _merge_payments(
    existing: Mapping[str, Any] | None, payments: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every stored payment must come back unchanged: a payment cannot be removed or edited."""
    stored = {p["id"]: p for p in existing["payments"]} if existing else {}
    merged, new = [], []
    seen: set[str] = set()
    for i, payment in enumerate(payments):
        where = f"register_sale_payments[{i}]"
        if payment["id"] is None:
            new.append(payment)
            merged.append(payment)
            continue
        previous = stored.get(payment["id"])
        if previous is None or payment["id"] in seen:
            raise _invalid(f"{where}.id", "is not a payment of this sale")
        same_type = previous["retailer_payment_type_id"] == payment["retailer_payment_type_id"]
        if previous["amount"] != payment["amount"] or not same_type:
            raise ApiError(
                400,
                f"{where} cannot be changed",
                "An existing payment must be resent with its type and amount unchanged.",
            )
        seen.add(payment["id"])
        merged.append(previous)
    missing = [payment_id for payment_id in stored if payment_id not in seen]
    if missing:
        raise ApiError(
            400,
            "register_sale_payments: a payment cannot be removed",
            f"Missing payments: {', '.join(missing)}",
        )
    return merged, new


def _state_and_attributes(body: Mapping[str, Any], status: str) -> dict[str, Any]:
    """``state`` and attributes as sent, checked against ``status``; derived from it when
    absent. Attributes beyond the status's own (``delivery``...) are kept as sent: left out
    of an update, they are gone, like a line left out."""
    state, implied = STATE_OF[status]
    sent_state = _optional_str(body, "state")
    if sent_state is not None and sent_state != state:
        raise _invalid("state", f"is {sent_state!r} but status {status} means {state!r}")
    raw = body.get("register_sale_attributes")
    if raw is None:
        return {"state": state, "attributes": list(implied)}
    if not isinstance(raw, list) or not all(isinstance(a, str) and a for a in raw):
        raise _invalid("register_sale_attributes", "must be an array of strings")
    for attribute in ("onaccount", "layby"):
        if (attribute in raw) != (attribute in implied):
            raise _invalid("register_sale_attributes", f"does not agree with status {status}")
    return {"state": state, "attributes": list(dict.fromkeys(raw))}


def _webhook_fields(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """0.9's ``data`` object: ``url`` (absolute http or https), ``type`` (one of
    ``WEBHOOK_TYPES``), ``active`` (true or false); anything else is refused, naming it."""
    unknown = sorted(set(data) - WEBHOOK_FIELDS)
    if unknown:
        raise _invalid(f"data.{unknown[0]}", "is not a webhook field (url, active, type)")
    fields: dict[str, Any] = {}
    for key in ("url", "type"):
        if key in data or not partial:
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise _invalid(f"data.{key}", "is required")
            fields[key] = value
    if "url" in fields:
        try:
            parts = urlsplit(fields["url"])
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid("data.url", "must be an absolute http or https URL")
    if "type" in fields and fields["type"] not in WEBHOOK_TYPES:
        raise _invalid("data.type", f"must be one of {', '.join(WEBHOOK_TYPES)}")
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise _invalid("data.active", "must be true or false")
        fields["active"] = data["active"]
    return fields


def _parse_adjustment(item: object, where: str) -> tuple[str, str, Decimal, str]:
    if not isinstance(item, dict):
        raise _invalid(where, "must be an object")
    customer_id = _required_str(item, "customer_id", where)
    credit = _optional_number(item, "credit", where)
    debit = _optional_number(item, "debit", where)
    if (credit is None) == (debit is None):
        raise _invalid(where, "needs exactly one of credit or debit")
    kind, amount = ("credit", credit) if credit is not None else ("debit", debit)
    assert amount is not None
    if amount <= 0:
        raise _invalid(f"{where}.{kind}", "must be > 0")
    return customer_id, kind, amount, _optional_str(item, "reason", where) or ""


# -- HTTP ----------------------------------------------------------------------------------------


class XSeriesSandbox:
    """The HTTP face of one ``XSeriesState``: auth, query parsing and the JSON envelopes."""

    def __init__(
        self,
        fixtures: Mapping[str, Any],
        *,
        token: str | None,
        clock: Callable[[], float],
        scopes: frozenset[str],
        oauth: Callable[[XSeriesSandbox], AuthorizationServer],
        deliver: Deliver,
    ) -> None:
        self.startup = fixtures
        self.token = token
        self.clock = clock
        self.startup_scopes = scopes
        self.scopes = scopes
        self.state = XSeriesState(fixtures, self.now())
        self.oauth = oauth(self)
        self.outbox = Outbox(deliver)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def reset(self, fixtures: Any = None) -> None:
        """Everything comes back from fixtures: tokens, webhooks and their log are forgotten."""
        self.state = XSeriesState(self.startup if fixtures is None else fixtures, self.now())
        self.scopes = self.startup_scopes
        self.oauth.reset()
        self.outbox.reset()

    def default_rate_limit(self) -> RateLimit:
        """The real formula: 300 requests per register plus 50, per 5-minute window."""
        return RateLimit(300 * len(self.state.registers) + 50, 300)

    def token_answer(self, issued: Issued) -> dict[str, Any]:
        """The token endpoint's answer, as the 2025-03 changelog shows it."""
        scopes = issued.grant.scopes or frozenset()
        return {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires": int(issued.expires_at),
            "expires_in": issued.expires_in,
            "refresh_token": issued.refresh_token,
            "domain_prefix": self.state.domain_prefix,
            "scope": " ".join(s for s in SCOPES if s in scopes),
        }

    def routes(self) -> list[Route]:
        def route(path: str, handler: common.Handler, method: str = "GET") -> Route:
            needs = ROUTE_SCOPES[(method, path)]  # a route without a scope fails here
            return Route(path, self._guarded(handler, needs), methods=[method])

        return [
            *self.oauth.routes(),
            route("/api/config", self.get_config),
            route("/api/products", self.list_products),
            route("/api/products/{id}", self.get_product),
            route("/api/customers", self.list_customers),
            route("/api/customers", self.post_customer, "POST"),
            route("/api/payment_types", self.list_payment_types),
            route("/api/registers", self.list_registers),
            route("/api/users", self.list_users),
            route("/api/register_sales", self.list_register_sales),
            route("/api/register_sales", self.post_register_sale, "POST"),
            route("/api/register_sales/{id}", self.get_register_sale),
            route("/api/2.0/search", self.search),
            route("/api/2.0/sales", self.list_sales_20),
            route(ADJUSTMENTS_PATH, self.post_adjustments, "POST"),
            route("/api/webhooks", self.list_webhooks),
            route("/api/webhooks", self.post_webhook, "POST"),
            route("/api/webhooks/{id}", self.get_webhook),
            route("/api/webhooks/{id}", self.put_webhook, "PUT"),
            route("/api/webhooks/{id}", self.delete_webhook, "DELETE"),
        ]

    def admin_routes(self) -> list[Route]:
        return [
            Route("/_sandbox/scopes", self._get_scopes, methods=["GET"]),
            Route("/_sandbox/scopes", self._post_scopes, methods=["POST"]),
            Route("/_sandbox/scopes", self._delete_scopes, methods=["DELETE"]),
            Route("/_sandbox/products/{id}", self._post_product, methods=["POST"]),
            Route("/_sandbox/register_sales/{id}/void", self._post_void, methods=["POST"]),
            *self.oauth.admin_routes(),
            *self.outbox.admin_routes(),
        ]

    def _guarded(self, handler: common.Handler, needs: str | Mapping[str, str]) -> common.Handler:
        async def then_publish(request: Request) -> Response:
            try:
                return await handler(request)
            finally:
                self._publish()

        return common.guarded(
            then_publish,
            lambda request: self._authorize(request, needs),
            ApiError,
            _error_response,
        )

    def _authorize(self, request: Request, needs: str | Mapping[str, str]) -> None:
        """The caller's app goes in ``request.state.client_id`` (webhooks are per app)."""
        client_id, scopes = self._caller(common.bearer_token(request))
        request.state.client_id = client_id
        scope = needs if isinstance(needs, str) else needs.get(request.query_params.get("type", ""))
        if scope is not None and scope not in scopes:
            raise ApiError(403, "permission denied")

    def _caller(self, token: str | None) -> tuple[str, frozenset[str]]:
        """The app a token acts for and what it may do now: an issued token its consent's
        scopes within the sandbox-wide ones, a personal token the sandbox-wide ones."""
        if token is None:
            raise ApiError(401, NOT_VALID)
        if self.token is not None and common.same_secret(token, self.token):
            return self.oauth.client_id, self.scopes
        access = self.oauth.tokens.lookup(token)
        if access is not None:
            if access.expired(self.clock()):
                raise ApiError(401, NOT_VALID, "The access token has expired.")
            return access.grant.client_id, (access.grant.scopes or frozenset()) & self.scopes
        if self.token is None:
            return self.oauth.client_id, self.scopes
        raise ApiError(401, NOT_VALID)

    def _publish(self) -> None:
        """Each change goes to every active webhook of its type, in the background: the
        request that made it never waits for a receiver."""
        state = self.state
        for kind, object_id in state.take_changes():
            hooks = [h for h in state.webhooks.values() if h["active"] and h["type"] == kind]
            if not hooks:
                continue
            payload = common.dumps(state.rendered(kind, object_id)).decode()
            fields = {"payload": payload, "type": kind, "domain_prefix": state.domain_prefix}
            body = urlencode(fields).encode()
            for hook in hooks:
                record = {"webhook_id": hook["id"], "url": hook["url"], "type": kind,
                          "object_id": object_id}  # fmt: skip
                self.outbox.send(hook["url"], {"Content-Type": FORM}, body, record)

    def _scopes_json(self) -> JSONResponse:
        return JSONResponse({"scopes": " ".join(s for s in SCOPES if s in self.scopes)})

    async def _get_scopes(self, request: Request) -> Response:
        return self._scopes_json()

    async def _post_scopes(self, request: Request) -> Response:
        try:
            body = common.parse_json(await request.body())
            if not isinstance(body, dict) or set(body) != {"scopes"}:
                raise ValueError('the body must be {"scopes": "space-separated scopes"}')
            if not isinstance(body["scopes"], str):
                raise ValueError("scopes must be a string of space-separated scopes")
            self.scopes = parse_scopes(body["scopes"])
        except (ValueError, RecursionError) as exc:
            return JSONResponse({"error": "Invalid scopes", "details": str(exc)}, status_code=400)
        return self._scopes_json()

    async def _delete_scopes(self, request: Request) -> Response:
        self.scopes = self.startup_scopes
        return self._scopes_json()

    async def _post_product(self, request: Request) -> Response:
        """The back office changing a product: ``product.update`` goes out."""
        try:
            changes = await _json_object(request)
            product = self.state.update_product(request.path_params["id"], changes, self.now())
        except ApiError as exc:
            return _error_response(exc)
        self._publish()
        return ApiResponse({"product": product})

    async def _post_void(self, request: Request) -> Response:
        """The till voiding a sale: ``sale.update`` goes out, and ``customer.update`` when
        a balance moves. The body is empty (or ``{}``)."""
        try:
            if (await request.body()).strip():
                extra = sorted(await _json_object(request))
                if extra:
                    raise _invalid(extra[0], "is not an option of a void (it takes none)")
            sale = self.state.void_sale(request.path_params["id"], self.now())
        except ApiError as exc:
            return _error_response(exc)
        self._publish()
        return ApiResponse({"register_sale": self.state.render_sale_09(sale)})

    async def get_config(self, request: Request) -> Response:
        return ApiResponse({"config": self.state.config})

    async def list_products(self, request: Request) -> Response:
        params = request.query_params
        active = params.get("active")
        if active is not None and active.lower() not in ("0", "1", "true", "false"):
            raise ApiError(400, "active must be 0 or 1", f"active={active!r}")
        since = _query_time(params, "since")
        products = [
            product
            for product in self.state.products.values()
            if all(params.get(k) in (None, product.get(k)) for k in ("sku", "handle"))
            and (active is None or _flag(active) == _flag(product.get("active", True)))
            and (since is None or product["updated_at"] >= since)
        ]
        return ApiResponse(_paginated("products", products, params))

    async def get_product(self, request: Request) -> Response:
        product_id = request.path_params["id"]
        product = self.state.products.get(product_id)
        if product is None:
            raise ApiError(404, "Not Found", f"No product with id {product_id!r}")
        return ApiResponse({"products": [product]})

    async def list_customers(self, request: Request) -> Response:
        params = request.query_params
        chosen = [key for key in ("id", "code", "email") if key in params]
        if len(chosen) > 1:
            raise ApiError(
                400, "id, code and email cannot be combined", f"Got {', '.join(chosen)}."
            )
        if chosen and not params[chosen[0]]:
            raise ApiError(400, f"{chosen[0]} must not be empty", "Leave the filter out instead.")
        since = _query_time(params, "since")
        customers = [
            customer
            for customer in self.state.customers.values()
            if _customer_matches(customer, chosen[0] if chosen else None, params)
            and (since is None or customer["updated_at"] >= since)
        ]
        content = _paginated("customers", customers, params)
        content["customers"] = [self.state.render_customer_09(c) for c in content["customers"]]
        return ApiResponse(content)

    async def post_customer(self, request: Request) -> Response:
        customer = self.state.save_customer(await _json_object(request), self.now())
        return ApiResponse({"customer": self.state.render_customer_09(customer)})

    async def list_payment_types(self, request: Request) -> Response:
        return ApiResponse({"payment_types": list(self.state.payment_types.values())})

    async def list_registers(self, request: Request) -> Response:
        return ApiResponse({"registers": list(self.state.registers.values())})

    async def list_users(self, request: Request) -> Response:
        return ApiResponse({"users": list(self.state.users.values())})

    async def list_register_sales(self, request: Request) -> Response:
        params = request.query_params
        statuses = params.getlist("status[]")
        unknown = [status for status in statuses if status not in STATUSES]
        if unknown:
            raise ApiError(400, f"status[] must be one of {', '.join(STATUSES)}", repr(unknown))
        since = _query_time(params, "since")
        outlet_id = params.get("outlet_id")
        registers = self.state.registers
        sales = [
            sale
            for sale in self.state.sales.values()
            if (not statuses or sale["status"] in statuses)
            and (since is None or sale["updated_at"] >= since)
            and (
                outlet_id is None
                or registers.get(sale["register_id"], {}).get("outlet_id") == outlet_id
            )
        ]
        content = _paginated("register_sales", sales, params)
        content["register_sales"] = [
            self.state.render_sale_09(s) for s in content["register_sales"]
        ]
        return ApiResponse(content)

    async def get_register_sale(self, request: Request) -> Response:
        sale_id = request.path_params["id"]
        sale = self.state.sales.get(sale_id)
        if sale is None:
            raise ApiError(404, "Not Found", f"No register sale with id {sale_id!r}")
        return ApiResponse({"register_sales": [self.state.render_sale_09(sale)]})

    async def post_register_sale(self, request: Request) -> Response:
        sale = self.state.save_sale(await _json_object(request), self.now())
        return ApiResponse({"register_sale": self.state.render_sale_09(sale)})

    async def list_sales_20(self, request: Request) -> Response:
        """2.0 paging by version: the sales whose ``version`` is above ``after`` (and below
        ``before``), lowest first; every change of a sale gives it a new version, so
        ``after`` = the last ``version.max`` read lists what changed since."""
        params = request.query_params
        unknown = sorted(set(params) - set(SALES_20_PARAMETERS))
        if unknown:
            raise ApiError(
                400,
                f"{unknown[0]} is not a parameter of this list",
                f"It takes {', '.join(SALES_20_PARAMETERS)}.",
            )
        after = _query_int(params, "after", 0, 0)
        before = _query_int(params, "before", 0, 1) if "before" in params else None
        page_size = min(_query_int(params, "page_size", 100, 1), 1000)
        sales = sorted(
            (
                sale
                for sale in self.state.sales.values()
                if sale["version"] > after and (before is None or sale["version"] < before)
            ),
            key=lambda sale: int(sale["version"]),
        )[:page_size]
        version = {"min": sales[0]["version"], "max": sales[-1]["version"]} if sales else None
        return ApiResponse(
            {"data": [self.state.render_sale_20(sale) for sale in sales], "version": version}
        )

    async def search(self, request: Request) -> Response:
        params = request.query_params
        kind = params.get("type")
        if kind not in SEARCH_FIELDS:
            raise ApiError(400, "type must be customers or sales", f"type={kind!r}")
        _check_search_parameters(kind, params)
        offset = _query_int(params, "offset", 0, 0)
        page_size = min(_query_int(params, "page_size", 100, 1), 1000)
        if kind == "customers":
            found = [
                self.state.render_customer_20(customer)
                for customer in _search_customers(self.state.customers.values(), params)
            ]
        else:
            found = [self.state.render_sale_20(sale) for sale in self._search_sales(params)]
        return ApiResponse({"data": found[offset : offset + page_size]})

    def _search_sales(self, params: QueryParams) -> list[dict[str, Any]]:
        order_by = params.get("order_by", "sale_date")
        direction = params.get("order_direction", "desc")
        if order_by not in ("sale_date", "created_at"):
            raise ApiError(400, "order_by must be sale_date or created_at", f"{order_by!r}")
        if direction not in ("asc", "desc"):
            raise ApiError(400, "order_direction must be asc or desc", f"{direction!r}")
        statuses = params.getlist("status")
        date_from = _query_time(params, "date_from")
        date_to = _query_time(params, "date_to")
        registers = self.state.registers
        sales = [
            sale
            for sale in self.state.sales.values()
            if all(
                params.get(key) in (None, sale[key])
                for key in ("customer_id", "user_id", "invoice_number")
            )
            and (not statuses or sale["status"] in statuses)
            and (date_from is None or sale["sale_date"] >= date_from)
            and (date_to is None or sale["sale_date"] <= date_to)
            and params.get("outlet_id")
            in (None, registers.get(sale["register_id"], {}).get("outlet_id"))
        ]
        sales.sort(key=lambda sale: str(sale[order_by]), reverse=direction == "desc")
        return sales

    async def post_adjustments(self, request: Request) -> Response:
        status, content = self.state.adjust(await _json_object(request), self.now())
        return ApiResponse(content, status_code=status)

    async def list_webhooks(self, request: Request) -> Response:
        """Only the calling app's, as the spec says."""
        caller = request.state.client_id
        hooks = [h for h in self.state.webhooks.values() if h["client_id"] == caller]
        return ApiResponse([self.state.render_webhook(h) for h in hooks])

    async def post_webhook(self, request: Request) -> Response:
        data = await _webhook_data(request)
        webhook = self.state.save_webhook(data, request.state.client_id)
        return ApiResponse(self.state.render_webhook(webhook))

    async def get_webhook(self, request: Request) -> Response:
        webhook = self.state.webhook(request.path_params["id"], request.state.client_id)
        return ApiResponse(self.state.render_webhook(webhook))

    async def put_webhook(self, request: Request) -> Response:
        data = await _webhook_data(request)
        webhook_id = request.path_params["id"]
        webhook = self.state.save_webhook(data, request.state.client_id, webhook_id)
        return ApiResponse(self.state.render_webhook(webhook))

    async def delete_webhook(self, request: Request) -> Response:
        webhook = self.state.webhook(request.path_params["id"], request.state.client_id)
        del self.state.webhooks[webhook["id"]]
        return ApiResponse({"status": "success"})


def _customer_matches(customer: Mapping[str, Any], key: str | None, params: QueryParams) -> bool:
    if key is None:
        return True
    value = params[key]
    if key == "id":
        return bool(customer["id"] == value)
    if key == "code":
        return bool(customer["customer_code"] == value)
    return bool(customer["email"].lower() == value.lower())


async def _webhook_data(request: Request) -> dict[str, Any]:
    """0.9 takes a webhook as a form with one field, ``data``: a JSON object as text."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM:
        raise ApiError(400, f"Content-Type must be {FORM}", "Send the webhook as form field data.")
    try:
        pairs = form_pairs(await request.body())
    except OAuthError:
        raise ApiError(400, "Invalid form", "The body is not valid form data.") from None
    names = [name for name, _ in pairs]
    if names != ["data"]:
        extra = sorted(set(names) - {"data"})
        problem = f"{extra[0]} is not a field" if extra else "data is required, once"
        raise ApiError(400, problem, "The form takes one field, data.")
    try:
        data = common.parse_json(pairs[0][1])
    except (ValueError, RecursionError) as exc:
        raise _invalid("data", f"must be a JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise _invalid("data", "must be a JSON object")
    return data


def _check_search_parameters(kind: str, params: QueryParams) -> None:
    """Only what the spec lists for ``kind``; a documented one the sandbox does not play is
    refused too (stricter than the real API, never kinder)."""
    for key in params:
        if key in SEARCH_NOT_SIMULATED:
            raise ApiError(400, f"{key} is not simulated by this sandbox", f"{key}={params[key]!r}")
        if key not in SEARCH_COMMON and key not in SEARCH_FIELDS[kind]:
            documented = ", ".join(SEARCH_FIELDS[kind])
            raise ApiError(
                400,
                f"{key} is not a search field for type={kind}",
                f"The {kind} search takes {documented}.",
            )


def _search_customers(
    customers: Iterable[dict[str, Any]], params: QueryParams
) -> list[dict[str, Any]]:
    """2.0 search by the documented fields, sorted by one of them when asked."""
    found = [customer for customer in customers if _customer_search_matches(customer, params)]
    order_by = params.get("order_by")
    direction = params.get("order_direction", "asc")
    if direction not in ("asc", "desc"):
        raise ApiError(400, "order_direction must be asc or desc", f"{direction!r}")
    if order_by is not None:
        if order_by not in SEARCH_FIELDS["customers"]:
            allowed = " or ".join(SEARCH_FIELDS["customers"])
            raise ApiError(400, f"order_by must be {allowed}", f"{order_by!r}")
        found.sort(key=lambda customer: str(customer[order_by]), reverse=direction == "desc")
    return found


def _customer_search_matches(customer: Mapping[str, Any], params: QueryParams) -> bool:
    """Names by prefix, case-insensitive; the customer code exact."""
    for key in SEARCH_FIELDS["customers"]:
        wanted = params.get(key)
        if wanted is None:
            continue
        if not wanted:
            raise ApiError(400, f"{key} must not be empty", "Leave the filter out instead.")
        have = str(customer[key])
        if key in SEARCH_PREFIX_FIELDS:
            ok = have.lower().startswith(wanted.lower())
        else:
            ok = have == wanted
        if not ok:
            return False
    return True


async def _http_error(request: Request, exc: Exception) -> Response:
    """Router 404s and 405s in the API's JSON error shape instead of Starlette's plain text."""
    assert isinstance(exc, HTTPException)
    content = {"error": exc.detail, "details": f"{request.method} {request.url.path}"}
    return ApiResponse(content, status_code=exc.status_code, headers=exc.headers)


def load_fixtures(path: str | Path) -> dict[str, Any]:
    """Read and check a fixture file now, so a bad file fails at startup with its name."""
    return common.read_fixtures(path, lambda data: XSeriesState(data, datetime.now(UTC)))


async def _deliver_within_limit(address: str, headers: Mapping[str, str], body: bytes) -> int:
    return await deliver_over_http(address, headers, body, timeout_s=DELIVERY_TIMEOUT_S)


def create_app(
    fixtures: Mapping[str, Any] | None = None,
    *,
    token: str | None = None,
    latency_ms: int = 0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    scopes: str | Iterable[str] | None = None,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    token_lifetime_s: int = TOKEN_LIFETIME_S,
    redirect_uris: Iterable[str] | None = None,
    deliver: Deliver = _deliver_within_limit,
) -> Starlette:
    """The X-Series sandbox app; ``clock``, ``sleep`` and ``deliver`` are injectable so tests
    never wait and can capture webhooks without a server. ``scopes``: what personal tokens
    hold and the ceiling of every token (space-separated; None: everything); ``client_id``
    and ``client_secret``: the OAuth app it knows; ``token_lifetime_s``: how long the access
    tokens it issues live; ``redirect_uris``: the app's registered ones (None: any absolute
    http(s) URL); ``token``: a static (personal) token, for scripts."""
    startup = load_fixtures(DEMO_FIXTURES) if fixtures is None else fixtures

    def oauth(sandbox: XSeriesSandbox) -> AuthorizationServer:
        return AuthorizationServer(
            name="Lightspeed Retail X-Series",
            consent_path=CONSENT_PATH,
            exchange_path=EXCHANGE_PATH,
            client_id=client_id,
            client_secret=client_secret,
            lifetime_s=token_lifetime_s,
            clock=clock,
            answer=sandbox.token_answer,
            scopes=parse_scopes,
            redirect_extras=lambda: {"domain_prefix": sandbox.state.domain_prefix},
            redirect_uris=redirect_uris,
        )

    sandbox = XSeriesSandbox(
        startup,
        token=token,
        clock=clock,
        scopes=parse_scopes(scopes),
        oauth=oauth,
        deliver=deliver,
    )
    api_routes = sandbox.routes()
    controls = SandboxControls(
        routes=api_routes,
        default_rate_limit=sandbox.default_rate_limit,
        reset=sandbox.reset,
        latency_ms=latency_ms,
        clock=clock,
        sleep=sleep,
    )
    app = Starlette(
        routes=[*controls.admin_routes(), *sandbox.admin_routes(), *api_routes],
        middleware=[Middleware(ControlsMiddleware, controls=controls)],
        exception_handlers={HTTPException: _http_error, Exception: common.server_error},
    )
    app.state.sandbox = sandbox
    app.state.controls = controls
    return app
