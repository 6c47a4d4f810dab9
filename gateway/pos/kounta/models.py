"""Typed views of the Kounta payloads the gateway reads (ids arrive as integers; we keep
them as strings so that every POS id has one type)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    model_validator,
)

from gateway.domain.money import ZERO, round_money, to_decimal
from gateway.pos.fields import Amount, OptionalAmount, OptionalText, Text, Timestamp

OPEN_STATUSES = frozenset({"SUBMITTED", "ON_HOLD", "PENDING", "ACCEPTED"})


def kounta_id(value: str | None) -> int | str | None:
    """Kounta ids are integers on the wire; we keep them as strings everywhere else."""
    return int(value) if value and value.isdigit() else value


def _multiplier(value: Any) -> Decimal:
    """A ``price_variation``: none sent (or null) is 1, full price, never 0."""
    return Decimal(1) if value is None or value == "" else to_decimal(value)


Multiplier = Annotated[Decimal, BeforeValidator(_multiplier)]


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
    """A line as Kounta sent it. Besides the fields we read, it keeps the payload itself
    (``as_read``), so a line written back carries every field it came with: its ``id``,
    ``number``, ``modifiers`` and whatever else Kounta adds (docs/pos-contracts.md)."""

    number: int | None = None
    product_id: OptionalText = None
    product: Named | None = None
    quantity: Amount
    unit_price: Amount
    unit_tax: Amount = Decimal(0)
    price_variation: Multiplier = Decimal(1)
    notes: OptionalText = None
    _as_read: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_as_read(cls, data: Any, handler: ModelWrapValidatorHandler[Line]) -> Line:
        if isinstance(data, dict) and not data.get("product_id") and data.get("product"):
            product = data["product"]
            product_id = product.get("id") if isinstance(product, dict) else None
            line = handler({**data, "product_id": product_id})
        else:
            line = handler(data)
        if isinstance(data, dict):
            line._as_read = dict(data)
        return line

    @property
    def as_read(self) -> dict[str, Any]:
        return dict(self._as_read)

    def write(self, price_variation: Decimal) -> dict[str, Any]:
        """The line as ``PUT .../orders/{id}`` takes it back: every field as it was read,
        only ``price_variation`` changed (lines are replaced wholesale)."""
        return {**self._as_read, "price_variation": price_variation}


class Payment(KModel):
    """A payment on an order: known by its ``id`` and ``method`` (the order fixture of
    Kounta's documentation shows no ``number`` and no ``method_id``); ``ref`` is ours."""

    id: OptionalText = None
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
    """An order. ``total``, ``total_tax`` and ``paid`` are Kounta's when it sends them; the
    order in its own documentation has none of them, so without them they are worked out
    from the lines and payments (``line_amounts``), never taken as 0."""

    id: Text
    status: Text = ""
    customer_id: OptionalText = None
    customer: Named | None = None
    site_id: OptionalText = None
    notes: OptionalText = None
    lines: list[Line] = Field(default_factory=list)
    payments: list[Payment] = Field(default_factory=list)
    sent_total: OptionalAmount = Field(default=None, alias="total")
    sent_total_tax: OptionalAmount = Field(default=None, alias="total_tax")
    sent_paid: OptionalAmount = Field(default=None, alias="paid")
    # The order-wide multiplier: an order discount (0.9 is 10% off every line).
    price_variation: Multiplier = Decimal(1)
    created_at: Timestamp = None
    updated_at: Timestamp = None
    deleted_at: Timestamp = None  # only on an order read from ``/orders/deleted``

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def line_amounts(self, line: Line) -> tuple[Decimal, Decimal]:
        """One unit of ``line`` as charged: price and tax with the line's and the order's
        ``price_variation`` (inferred: the order's multiplies every line's)."""
        factor = line.price_variation * self.price_variation
        return line.unit_price * factor, line.unit_tax * factor

    def _line_totals(self) -> list[tuple[Decimal, Decimal]]:
        """Each line's price and tax, rounded half-up to cents on its own (inferred, as
        Kounta shows ``line_total_ex_tax`` and ``line_total_tax`` per line)."""
        totals = []
        for line in self.lines:
            price, tax = self.line_amounts(line)
            totals.append((round_money(price * line.quantity), round_money(tax * line.quantity)))
        return totals

    @property
    def total(self) -> Decimal:
        """What the order costs, tax included."""
        if self.sent_total is not None:
            return self.sent_total
        return sum((price + tax for price, tax in self._line_totals()), ZERO)

    @property
    def total_tax(self) -> Decimal:
        if self.sent_total_tax is not None:
            return self.sent_total_tax
        return sum((tax for _, tax in self._line_totals()), ZERO)

    @property
    def paid(self) -> Decimal:
        if self.sent_paid is not None:
            return self.sent_paid
        return sum((payment.amount for payment in self.payments), ZERO)

    @property
    def owing(self) -> Decimal:
        return max(ZERO, self.total - self.paid)

    @property
    def refunded(self) -> Decimal:
        """What was given back by negative payments (Kounta's refunds), in all."""
        return -sum((p.amount for p in self.payments if p.amount < 0), ZERO)

    @property
    def customer_ref(self) -> str | None:
        return self.customer_id or (self.customer.id if self.customer else None)

    def edit_state(self) -> tuple[object, ...]:
        """What a write of the lines and notes would overwrite: if it differs between two
        reads, someone (the register) changed the order in between."""
        return (self.updated_at, self.notes, [line.as_read for line in self.lines])


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
