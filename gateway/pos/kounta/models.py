"""Typed views of the Kounta payloads the gateway reads (ids arrive as integers; we keep
them as strings so that every POS id has one type)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.pos.fields import Amount, OptionalText, Text, Timestamp

OPEN_STATUSES = frozenset({"SUBMITTED", "ON_HOLD", "PENDING", "ACCEPTED"})


def kounta_id(value: str | None) -> int | str | None:
    """Kounta ids are integers on the wire; we keep them as strings everywhere else."""
    return int(value) if value and value.isdigit() else value


class KModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class Company(KModel):
    id: Text
    name: Text = ""
    business_name: OptionalText = None
    currency: OptionalText = None


class Customer(KModel):
    id: Text
    first_name: Text = ""
    last_name: OptionalText = None
    email: OptionalText = None
    phone: OptionalText = None
    mobile: OptionalText = None
    reference_id: Text = ""
    updated_at: Timestamp = None


class Named(KModel):
    id: Text
    name: Text = ""


class Line(KModel):
    number: int | None = None
    product_id: OptionalText = None
    product: Named | None = None
    quantity: Amount
    unit_price: Amount
    unit_tax: Amount = Decimal(0)
    price_variation: Amount = Decimal(1)
    notes: OptionalText = None

    @model_validator(mode="before")
    @classmethod
    def _product_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("product_id") and data.get("product"):
            return {**data, "product_id": data["product"].get("id")}
        return data

    def write(self, price_variation: Decimal | None = None) -> dict[str, Any]:
        """The line as ``PUT .../orders/{id}`` takes it (lines are replaced wholesale)."""
        body: dict[str, Any] = {
            "product_id": kounta_id(self.product_id),
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "unit_tax": self.unit_tax,
            "price_variation": self.price_variation if price_variation is None else price_variation,
        }
        if self.notes:
            body["notes"] = self.notes
        return body


class Payment(KModel):
    number: int | None = None
    method_id: OptionalText = None
    method: Named | None = None
    amount: Amount
    ref: OptionalText = None

    @model_validator(mode="before")
    @classmethod
    def _method_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("method_id") and data.get("method"):
            return {**data, "method_id": data["method"].get("id")}
        return data


class Order(KModel):
    id: Text
    status: Text = ""
    customer_id: OptionalText = None
    customer: Named | None = None
    site_id: OptionalText = None
    notes: OptionalText = None
    lines: list[Line] = Field(default_factory=list)
    payments: list[Payment] = Field(default_factory=list)
    total: Amount = Decimal(0)
    total_tax: Amount = Decimal(0)
    paid: Amount = Decimal(0)
    created_at: Timestamp = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def owing(self) -> Decimal:
        return self.total - self.paid

    @property
    def customer_ref(self) -> str | None:
        return self.customer_id or (self.customer.id if self.customer else None)


class PaymentMethod(KModel):
    id: Text
    name: Text = ""
    ledger_code: OptionalText = None


class Webhook(KModel):
    id: Text
    topic: Text
    address: Text
    headers: dict[str, str] = Field(default_factory=dict)


class TokenPair(KModel):
    access_token: Text
    refresh_token: OptionalText = None
    expires_in: int | None = None
