"""The X-Series client: the API calls the gateway makes, typed, over the shared HTTP layer.

Paths and shapes follow the 0.9 API (``/api/...``), the 2.0 search and the 2026-07 loyalty
adjustments endpoint. It holds no business rules: what to post is the services' decision.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from gateway.pos.budget import RateRule
from gateway.pos.errors import (
    SessionConflict,
    UpstreamForbidden,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamShapeError,
)
from gateway.pos.fields import field, parse, parse_list, segment
from gateway.pos.http import Auth, HttpLayer, Params, Upstream, UpstreamResponse
from gateway.pos.xseries.models import (
    AdjustmentOutcome,
    Customer,
    LoyaltyAdjustmentResult,
    NewSale,
    Pagination,
    PaymentType,
    PaymentWrite,
    Product,
    Register,
    RegisterSale,
    RetailerConfig,
    User,
    Webhook,
    payment_added,
    timestamp,
)

POS = "X-Series"
MAX_PAGE_SIZE = 200
SEARCH_PAGE_SIZE = 1000
ADJUSTMENTS = "/api/2026-07/loyalty/adjustments/bulk"
ADJUSTMENT_ANSWERS = frozenset({200, 207})  # the 2xx the 2026-07 specification gives
LOYALTY_SCOPE = "loyalty.transaction.write"
LOYALTY_WRITE_FORBIDDEN = (
    f"the {POS} token cannot write loyalty (scope {LOYALTY_SCOPE}): "
    "reconnect the store with that permission"
)
# X-Series allows 300 requests per register plus 50 per 300 s window, per store and
# application. Its answers say the store's own limit; where one does not, a store with
# one register (the fewest) is assumed (docs/pos-contracts.md).
RATE_RULE = RateRule(limit=300 * 1 + 50, window_s=300)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    pagination: Pagination

    @property
    def has_next(self) -> bool:
        return self.pagination.page < self.pagination.pages


@dataclass(frozen=True)
class Adjustment:
    """One line of a bulk loyalty adjustment: positive credits, negative debits."""

    customer_id: str
    amount: Decimal
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"customer_id": self.customer_id}
        body["credit" if self.amount > 0 else "debit"] = abs(self.amount)
        if self.reason:
            body["reason"] = self.reason
        return body


class XSeriesClient:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    @classmethod
    def connect(cls, layer: HttpLayer, base_url: str, auth: Auth) -> XSeriesClient:
        """The client of one store, kept under the store's rate limit."""
        return cls(layer.upstream(POS, base_url, auth, rate=RATE_RULE))

    # ----------------------------------------------------------------- account

    async def get_config(self) -> RetailerConfig:
        data = await self._get("/api/config")
        return parse(RetailerConfig, field(data, "config", POS), POS)

    async def list_payment_types(self) -> list[PaymentType]:
        data = await self._get("/api/payment_types")
        return parse_list(PaymentType, field(data, "payment_types", POS), POS)

    async def list_registers(self) -> list[Register]:
        return parse_list(Register, field(await self._get("/api/registers"), "registers", POS), POS)

    async def list_users(self) -> list[User]:
        return parse_list(User, field(await self._get("/api/users"), "users", POS), POS)

    # ----------------------------------------------------------------- products

    async def list_products(
        self, *, page: int = 1, page_size: int = MAX_PAGE_SIZE, **filters: str
    ) -> Page[Product]:
        return await self._page("/api/products", "products", Product, page, page_size, filters)

    def iter_products(self, **filters: str) -> AsyncIterator[Product]:
        return self._iterate("/api/products", "products", Product, filters)

    async def get_product(self, product_id: str) -> Product:
        data = await self._get(f"/api/products/{segment(product_id)}")
        products = parse_list(Product, field(data, "products", POS), POS)
        if not products:
            raise UpstreamNotFound(f"{POS} has no product {product_id}", pos=POS, status=404)
        return products[0]

    # ----------------------------------------------------------------- customers

    async def list_customers(
        self,
        *,
        id: str | None = None,
        code: str | None = None,
        email: str | None = None,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Page[Customer]:
        """0.9 customers, by one of ``id``, ``code`` or ``email`` (each an exact match)."""
        filters = {k: v for k, v in {"id": id, "code": code, "email": email}.items() if v}
        return await self._page("/api/customers", "customers", Customer, page, page_size, filters)

    def iter_customers(self) -> AsyncIterator[Customer]:
        return self._iterate("/api/customers", "customers", Customer, {})

    async def get_customer(self, customer_id: str, *, fresh: bool = False) -> Customer:
        """``fresh``: never share an in-flight read (a balance about to be spent)."""
        params: dict[str, str | int] = {"id": customer_id, "page": 1, "page_size": MAX_PAGE_SIZE}
        data = await self._get("/api/customers", params, fresh=fresh)
        for customer in parse_list(Customer, field(data, "customers", POS), POS):
            if customer.id == customer_id:
                return customer
        raise UpstreamNotFound(f"{POS} has no customer {customer_id}", pos=POS, status=404)

    async def save_customer(self, fields: Mapping[str, Any]) -> Customer:
        """Create a customer, or update one when ``fields`` carries its ``id``."""
        response = await self.upstream.post("/api/customers", dict(fields))
        return parse(Customer, field(response.data, "customer", POS), POS)

    async def search_customers(
        self,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        customer_code: str | None = None,
        company_name: str | None = None,
        offset: int = 0,
        page_size: int = 50,
    ) -> list[Customer]:
        """2.0 search, by the only customer fields it documents: no email (``list_customers``
        looks an email up)."""
        filters = {
            "first_name": first_name,
            "last_name": last_name,
            "customer_code": customer_code,
            "company_name": company_name,
        }
        params: dict[str, str | int] = {"type": "customers", "offset": offset}
        params["page_size"] = min(page_size, SEARCH_PAGE_SIZE)
        params.update({k: v for k, v in filters.items() if v})
        data = await self._get("/api/2.0/search", params)
        return parse_list(Customer, field(data, "data", POS), POS)

    # ----------------------------------------------------------------- sales

    async def list_sales(
        self,
        *,
        statuses: Sequence[str] = (),
        since: str | None = None,
        page: int = 1,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Page[RegisterSale]:
        return await self._page(
            "/api/register_sales", "register_sales", RegisterSale, page, page_size,
            _sale_filters(statuses, since),
        )  # fmt: skip

    def iter_sales(
        self, *, statuses: Sequence[str] = (), since: str | None = None
    ) -> AsyncIterator[RegisterSale]:
        filters = _sale_filters(statuses, since)
        return self._iterate("/api/register_sales", "register_sales", RegisterSale, filters)

    async def get_sale(self, sale_id: str, *, fresh: bool = False) -> RegisterSale:
        data = await self._get(f"/api/register_sales/{segment(sale_id)}", fresh=fresh)
        sales = parse_list(RegisterSale, field(data, "register_sales", POS), POS)
        if not sales:
            raise UpstreamNotFound(f"{POS} has no sale {sale_id}", pos=POS, status=404)
        return sales[0]

    async def create_sale(self, sale: NewSale) -> RegisterSale:
        """POST a new sale. Not idempotent: never retried (``source_id`` finds it again)."""
        return await self._save_sale(sale.as_json())

    async def add_payment(
        self, sale: RegisterSale, payment: PaymentWrite, *, status: str
    ) -> RegisterSale:
        """Write ``sale`` back whole with one more payment (X-Series replaces a sale with
        what is posted). Not idempotent: never retried."""
        return await self._save_sale(payment_added(sale, payment, status=status))

    async def find_sale_by_source(self, source_id: str, since: datetime) -> RegisterSale | None:
        """The sale created with ``source_id``, if one was, at or after ``since``."""
        async for sale in self.iter_sales(since=timestamp(since)):
            if sale.source_id == source_id:
                return sale
        return None

    async def _save_sale(self, payload: Mapping[str, Any]) -> RegisterSale:
        response = await self.upstream.post("/api/register_sales", dict(payload))
        return parse(RegisterSale, field(response.data, "register_sale", POS), POS)

    async def search_sales(
        self, *, customer_id: str, limit: int = 10, newest_first: bool = True
    ) -> list[RegisterSale]:
        params: dict[str, str | int] = {
            "type": "sales",
            "customer_id": customer_id,
            "order_by": "sale_date",
            "order_direction": "desc" if newest_first else "asc",
            "page_size": min(limit, SEARCH_PAGE_SIZE),
            "offset": 0,
        }
        data = await self._get("/api/2.0/search", params)
        return parse_list(RegisterSale, field(data, "data", POS), POS)

    # ----------------------------------------------------------------- webhooks

    async def list_webhooks(self) -> list[Webhook]:
        return parse_list(Webhook, await self._get("/api/webhooks"), POS)

    async def create_webhook(self, type_: str, url: str) -> Webhook:
        """0.9 takes a form field ``data`` holding the webhook as JSON."""
        data = json.dumps({"url": url, "active": True, "type": type_})
        response = await self.upstream.request("POST", "/api/webhooks", form={"data": data})
        return parse(Webhook, response.data, POS)

    async def delete_webhook(self, webhook_id: str) -> None:
        await self.upstream.request(
            "DELETE", f"/api/webhooks/{segment(webhook_id)}", idempotent=True
        )

    # ----------------------------------------------------------------- loyalty

    async def adjust_loyalty(
        self, session_id: str, adjustments: Sequence[Adjustment]
    ) -> LoyaltyAdjustmentResult:
        """Credit/debit balances; applied once per ``session_id``, so safe to retry.

        Classified by status, as the 2026-07 specification defines them, never by an error's
        words: 200/207 → the result, per customer; 400 → ``UpstreamRejected``; 403 →
        ``UpstreamForbidden`` (the token may not write loyalty); 409 → ``SessionConflict``.
        """
        body = {"session_id": session_id, "adjustments": [a.as_json() for a in adjustments]}
        try:
            response = await self.upstream.post(ADJUSTMENTS, body, idempotent=True)
        except UpstreamForbidden as refused:
            raise UpstreamForbidden(
                LOYALTY_WRITE_FORBIDDEN,
                pos=POS,
                status=refused.status,
                upstream_message=refused.upstream_message,
            ) from None
        except UpstreamRejected as rejected:
            if rejected.status != 409:
                raise
            raise SessionConflict(
                f"{POS} refused loyalty adjustment session {session_id}: it was used before "
                "with other adjustments (a bug of the gateway's, not retried)",
                pos=POS,
                status=409,
                upstream_message=rejected.upstream_message,
            ) from None
        if response.status_code not in ADJUSTMENT_ANSWERS:
            raise UpstreamShapeError(
                f"{POS} answered {response.status_code} to a loyalty adjustment, an answer "
                "its specification does not give",
                pos=POS,
                status=response.status_code,
            )
        return parse(LoyaltyAdjustmentResult, response.data, POS)

    async def adjust_balance(self, session_id: str, adjustment: Adjustment) -> AdjustmentOutcome:
        """One customer's adjustment: applied, or refused for this customer. An answer that
        does not say which is ``UpstreamShapeError`` (transient): the same ``session_id``
        sent again is answered as the first time, so the retry finds out."""
        result = await self.adjust_loyalty(session_id, [adjustment])
        outcome = result.outcome(adjustment.customer_id)
        if outcome is None:
            raise UpstreamShapeError(
                f"{POS} answered a loyalty adjustment without saying whether customer "
                f"{adjustment.customer_id} was adjusted",
                pos=POS,
            )
        return outcome

    async def can_write_loyalty(self) -> bool:
        """Whether the token may adjust balances, asked without moving any: an empty
        ``adjustments`` list, which X-Series' permission check refuses (403) before its
        validation does (400). Inferred (docs/pos-contracts.md); a POS that took the empty
        list (200) had nothing to apply, and let the token through."""
        body = {"session_id": str(uuid.uuid4()), "adjustments": []}
        try:
            await self.upstream.post(ADJUSTMENTS, body, idempotent=True)
        except UpstreamForbidden:
            return False
        except UpstreamRejected:  # past the permission check, refused by validation
            return True
        return True

    # ----------------------------------------------------------------- plumbing

    async def _get(self, path: str, params: Params | None = None, *, fresh: bool = False) -> Any:
        response: UpstreamResponse = await self.upstream.get(path, params, fresh=fresh)
        return response.data

    async def _page(
        self,
        path: str,
        key: str,
        model: type[M],
        page: int,
        page_size: int,
        filters: Mapping[str, str | Sequence[str]],
    ) -> Page[M]:
        params: dict[str, str | int | Sequence[str]] = dict(filters)
        params["page"] = page
        params["page_size"] = min(page_size, MAX_PAGE_SIZE)
        data = await self._get(path, params)
        items = parse_list(model, field(data, key, POS), POS)
        raw = data.get("pagination") if isinstance(data, dict) else None
        if raw:
            pagination = parse(Pagination, raw, POS)
        else:  # no pagination object: everything came in one page
            pagination = Pagination(results=len(items), page=page, page_size=len(items), pages=1)
        return Page(items, pagination)

    async def _iterate(
        self, path: str, key: str, model: type[M], filters: Mapping[str, str | Sequence[str]]
    ) -> AsyncIterator[M]:
        """Every item, following pages to the end (bounded by the first page's count)."""
        page = await self._page(path, key, model, 1, MAX_PAGE_SIZE, filters)
        last = max(page.pagination.pages, 1)
        if page.pagination.page_size:
            last = max(last, math.ceil(page.pagination.results / page.pagination.page_size))
        number = 1
        while True:
            for item in page.items:
                yield item
            if number >= last or not page.items:
                return
            number += 1
            page = await self._page(path, key, model, number, MAX_PAGE_SIZE, filters)


def _sale_filters(statuses: Sequence[str], since: str | None) -> dict[str, str | Sequence[str]]:
    filters: dict[str, str | Sequence[str]] = {}
    if statuses:
        filters["status[]"] = list(statuses)
    if since:
        filters["since"] = since
    return filters
