"""The Kounta client: company-scoped calls under ``/v1/companies/{id}``, over the shared
HTTP layer. Pagination follows ``X-Pages`` with the ``X-Page`` request header (from 0)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel

from gateway.pos.errors import UpstreamChanged, UpstreamNotFound, UpstreamShapeError
from gateway.pos.fields import parse, parse_list, segment
from gateway.pos.http import Upstream, UpstreamResponse
from gateway.pos.kounta.models import (
    Company,
    Customer,
    Order,
    PaymentMethod,
    Webhook,
    kounta_id,
)

POS = "Kounta"
M = TypeVar("M", bound=BaseModel)


class KountaClient:
    def __init__(self, upstream: Upstream, company_id: str) -> None:
        self.upstream = upstream
        self.company_id = company_id

    @property
    def _company(self) -> str:
        return f"/v1/companies/{segment(self.company_id)}"

    async def get_company(self) -> Company:
        """The company the credentials belong to (``/companies/me``)."""
        return parse(Company, (await self.upstream.get("/v1/companies/me")).data, POS)

    # ----------------------------------------------------------------- customers

    def iter_customers(self) -> AsyncIterator[Customer]:
        return self._iterate(f"{self._company}/customers", Customer)

    async def get_customer(self, customer_id: str) -> Customer:
        path = f"{self._company}/customers/{segment(customer_id)}"
        return parse(Customer, (await self.upstream.get(path)).data, POS)

    async def customer_by_email(self, email: str) -> Customer | None:
        """Kounta redirects (302) to the customer with that email, or answers 404."""
        try:
            response = await self.upstream.get(f"{self._company}/customers", {"email": email})
        except UpstreamNotFound:
            return None
        location = response.headers.get("location", "")
        if response.status_code in (301, 302, 303, 307) and location:
            customer_id = location.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")
            return await self.get_customer(customer_id)
        return parse(Customer, response.data, POS)

    async def get_order(self, order_id: str, *, fresh: bool = False) -> Order:
        path = f"{self._company}/orders/{segment(order_id)}"
        return parse(Order, (await self.upstream.get(path, fresh=fresh)).data, POS)

    def iter_orders(
        self, which: str = "", *, updated_since: datetime | None = None
    ) -> AsyncIterator[Order]:
        """Orders, newest first: every live one (``which`` empty), ``complete`` or ``deleted``
        ones, changed at or after ``updated_since`` (``updated_gte``: inferred, as only
        ``created_`` filters are documented, docs/pos-contracts.md)."""
        path = f"{self._company}/orders" + (f"/{segment(which)}" if which else "")
        params = {"updated_gte": kounta_time(updated_since)} if updated_since else None
        return self._iterate(path, Order, params)

    async def find_deleted_order(self, order_id: str, since: datetime) -> Order | None:
        """A deleted order, which Kounta lists at ``/orders/deleted`` only (a deleted order
        read by its id is 404, docs/pos-contracts.md), changed at or after ``since``."""
        async for order in self.iter_orders("deleted", updated_since=since):
            if order.id == order_id:
                return order
        return None

    async def discount_order(self, order: Order, factor: Decimal, mark: str) -> Order:
        """Multiply every line's ``price_variation`` by ``factor`` and append ``mark`` to the
        notes (how a later read recognises it). Kounta replaces the lines wholesale, so each
        goes back with every field it was read with (its ``id``, ``number``, ``modifiers``),
        and only if the order is still as ``order`` read it: otherwise the register is
        editing it, and writing would undo its change (``UpstreamChanged``, nothing sent).
        Not idempotent: sent twice, it discounts twice; never retried."""
        current = await self.get_order(order.id, fresh=True)
        if current.edit_state() != order.edit_state():
            raise UpstreamChanged(
                "the order changed at the register while the reward was being applied; "
                "nothing was changed: redeem again",
                pos=POS,
            )
        body = {
            "lines": [line.write(line.price_variation * factor) for line in order.lines],
            "notes": f"{order.notes or ''} {mark}".strip(),
        }
        path = f"{self._company}/orders/{segment(order.id)}"
        return parse(Order, (await self.upstream.put(path, body, idempotent=False)).data, POS)

    async def add_payment(self, order_id: str, method_id: str, amount: Decimal, ref: str) -> str:
        """POST a payment (never retried: Kounta does not deduplicate). What the answer's
        ``Location`` ends with: the payment's number, only good for updating it; a payment
        is found again on the order by its ``ref``."""
        path = f"{self._company}/orders/{segment(order_id)}/payments"
        body = {"method_id": kounta_id(method_id), "amount": amount, "ref": ref}
        return _created_id(await self.upstream.post(path, body))

    async def payment_methods(self) -> list[PaymentMethod]:
        response = await self.upstream.get(f"{self._company}/payment_methods")
        return parse_list(PaymentMethod, response.data, POS)

    # ----------------------------------------------------------------- webhooks

    async def list_webhooks(self) -> list[Webhook]:
        return [hook async for hook in self._iterate(f"{self._company}/webhooks", Webhook)]

    async def create_webhook(self, topic: str, address: str, headers: Mapping[str, str]) -> Webhook:
        body = {"topic": topic, "address": address, "format": "json", "headers": dict(headers)}
        response = await self.upstream.post(f"{self._company}/webhooks", body)
        return parse(Webhook, response.data, POS)

    async def update_webhook(self, webhook_id: str, headers: Mapping[str, str]) -> Webhook:
        path = f"{self._company}/webhooks/{segment(webhook_id)}"
        response = await self.upstream.put(path, {"headers": dict(headers)})
        return parse(Webhook, response.data, POS)

    async def delete_webhook(self, webhook_id: str) -> None:
        path = f"{self._company}/webhooks/{segment(webhook_id)}"
        await self.upstream.request("DELETE", path, idempotent=True)

    # ----------------------------------------------------------------- plumbing

    async def _iterate(
        self, path: str, model: type[M], params: Mapping[str, str] | None = None
    ) -> AsyncIterator[M]:
        page, pages = 0, 1
        while page < pages:
            response = await self.upstream.get(path, params, headers={"X-Page": str(page)})
            for item in parse_list(model, response.data, POS):
                yield item
            pages = _int_header(response, "x-pages", default=1)
            page += 1


def kounta_time(at: datetime) -> str:
    """A date filter's value: ISO 8601 with its offset, as Kounta writes its own times."""
    return at.astimezone(UTC).isoformat(timespec="seconds")


def _created_id(response: UpstreamResponse) -> str:
    """Kounta answers a POST with 201 and the new resource's URI in ``Location``."""
    location = str(response.headers.get("location", ""))
    if not location:
        raise UpstreamShapeError(f"{POS} created something but did not say where", pos=POS)
    return location.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")


def _int_header(response: UpstreamResponse, name: str, *, default: int) -> int:
    try:
        return max(default, int(response.headers.get(name, default)))
    except ValueError:
        return default
