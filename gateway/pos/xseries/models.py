"""Typed views of the X-Series payloads the gateway reads and writes.

The API mixes types freely (``enable_loyalty`` as true, 1 or "1"; balances as "0.00000";
ids as numbers or strings), so every field goes through a tolerant reader. Unknown fields
are kept (``extra="allow"``) so that a sale read and written back loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from gateway.pos.fields import (
    Amount,
    Flag,
    OptionalAmount,
    OptionalText,
    Text,
    Timestamp,
    parse_timestamp,
)

CLOSED_STATUSES = frozenset({"CLOSED", "ONACCOUNT_CLOSED", "LAYBY_CLOSED"})
LOYALTY_PAYMENT_TYPE_ID = "106"
# A loyalty balance is kept to five places (0.9 sends "50.00000", docs/pos-contracts.md).
BALANCE_STEP = Decimal("0.00001")


def balance_step(value: Decimal) -> Decimal:
    """A movement of a loyalty balance as the balance shows it: a line's loyalty times a
    fractional quantity can be finer than the balance keeps."""
    return value.quantize(BALANCE_STEP, rounding=ROUND_HALF_UP)


class XModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class RetailerConfig(XModel):
    retailer_id: Text = ""
    retailer_name: Text = ""
    domain_prefix: Text = ""
    currency: Text = ""
    enable_loyalty: Flag = False
    loyalty_ratio: Amount = Decimal(0)
    display_retail_price_tax_inclusive: Flag = False
    default_customer_group_id: OptionalText = None


class Pagination(XModel):
    results: int = 0
    page: int = 1
    page_size: int = 0
    pages: int = 1


class PriceBookEntry(XModel):
    id: Text = ""
    product_id: Text = ""
    price_book_id: OptionalText = None
    price_book_name: OptionalText = None
    customer_group_id: OptionalText = None
    outlet_id: OptionalText = None
    price: OptionalAmount = None
    loyalty_value: OptionalAmount = None
    tax: OptionalAmount = None
    tax_id: OptionalText = None
    min_units: OptionalAmount = None
    max_units: OptionalAmount = None
    valid_from: Timestamp = None
    valid_to: Timestamp = None


class Product(XModel):
    id: Text
    name: Text = ""
    handle: Text = ""
    sku: Text = ""
    active: Flag = True
    price: OptionalAmount = None
    tax: OptionalAmount = None
    tax_id: OptionalText = None
    retail_price: OptionalAmount = None
    price_book_entries: list[PriceBookEntry] = Field(default_factory=list)


class Customer(XModel):
    id: Text
    customer_code: Text = ""
    customer_group_id: OptionalText = None
    first_name: Text = ""
    last_name: Text = ""
    company_name: OptionalText = None
    email: OptionalText = None
    enable_loyalty: Flag = False
    loyalty_balance: Amount = Decimal(0)
    updated_at: Timestamp = None


class PaymentType(XModel):
    id: Text
    name: Text = ""
    # 0.9 calls it payment_type_id (an integer), 2.0 type_id: the global type, 106 = Loyalty.
    payment_type_id: Text = Field(
        default="", validation_alias=AliasChoices("payment_type_id", "type_id")
    )

    @property
    def is_loyalty(self) -> bool:
        return self.payment_type_id == LOYALTY_PAYMENT_TYPE_ID


class Register(XModel):
    id: Text
    name: Text = ""
    outlet_id: OptionalText = None


class User(XModel):
    id: Text
    name: Text = Field(default="", validation_alias=AliasChoices("display_name", "name"))


class SaleLine(XModel):
    id: OptionalText = None
    product_id: Text
    name: OptionalText = None
    register_id: OptionalText = None
    sequence: int | None = None
    quantity: Amount
    price: Amount
    tax: Amount = Decimal(0)
    tax_id: OptionalText = None
    loyalty_value: Amount = Decimal(0)
    cost: OptionalAmount = None
    discount: OptionalAmount = None
    price_set: int | None = None
    status: OptionalText = None
    attributes: list[dict[str, Any]] | None = None


class SalePayment(XModel):
    id: OptionalText = None
    register_id: OptionalText = None
    retailer_payment_type_id: Text
    payment_type_id: OptionalText = None
    name: OptionalText = None
    # Kept as the text X-Series sent, so a sale written back resends it unchanged.
    payment_date: OptionalText = None
    amount: Amount

    @property
    def paid_at(self) -> datetime | None:
        """When it was paid, to the second, whatever the spelling ("2026-11-21 10:00:00",
        ISO 8601 with or without a zone); None when unreadable."""
        try:
            moment = parse_timestamp(self.payment_date)
        except ValueError:
            return None
        return moment.astimezone(UTC).replace(microsecond=0) if moment else None


class RegisterSale(XModel):
    """A 0.9 register sale; also reads the 2.0 search shape (``line_items``, ``payments``)."""

    id: Text
    source_id: OptionalText = None
    register_id: OptionalText = None
    customer_id: OptionalText = None
    user_id: OptionalText = None
    sale_date: OptionalText = None
    note: OptionalText = None
    status: Text = ""
    # Since 2025-09 X-Series says a sale's status also as a state and attributes; both are
    # kept, and written back, so an update never drops what X-Series keeps.
    state: OptionalText = None
    register_sale_attributes: list[str] | None = None
    short_code: OptionalText = None
    invoice_number: OptionalText = None
    accounts_transaction_id: OptionalText = None
    total_price: Amount = Decimal(0)
    total_tax: Amount = Decimal(0)
    lines: list[SaleLine] = Field(
        default_factory=list,
        validation_alias=AliasChoices("register_sale_products", "line_items"),
    )
    payments: list[SalePayment] = Field(
        default_factory=list,
        validation_alias=AliasChoices("register_sale_payments", "payments"),
    )

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_STATUSES


class AppliedAdjustment(XModel):
    customer_id: Text
    balance: OptionalAmount = None


class AdjustmentError(XModel):
    customer_id: Text
    error: OptionalText = None


@dataclass(frozen=True)
class AdjustmentApplied:
    """X-Series applied it; ``balance`` is the customer's balance after, when it said."""

    balance: Decimal | None


@dataclass(frozen=True)
class AdjustmentRefused:
    """X-Series did not apply it for this customer. ``error`` is its own words, kept for a
    person to read: nothing is decided by them (docs/pos-contracts.md)."""

    error: str


AdjustmentOutcome = AdjustmentApplied | AdjustmentRefused


class Webhook(XModel):
    id: Text
    url: Text = ""
    active: Flag = True
    type: Text = ""


class LoyaltyAdjustmentResult(XModel):
    """A 200 or 207 answer of the loyalty adjustments: per customer, ``applied`` (with the
    new balance) or ``errors`` (not applied). Which list a customer is in is the answer."""

    applied: list[AppliedAdjustment] = Field(default_factory=list)
    errors: list[AdjustmentError] = Field(default_factory=list)

    def outcome(self, customer_id: str) -> AdjustmentOutcome | None:
        """None when the answer does not say: the customer in neither list, or in both."""
        applied = [entry for entry in self.applied if entry.customer_id == customer_id]
        refused = [entry for entry in self.errors if entry.customer_id == customer_id]
        if applied and not refused:
            return AdjustmentApplied(applied[-1].balance)
        if refused and not applied:
            return AdjustmentRefused(refused[0].error or "")
        return None


# The editable parts of a sale (swagger RegisterSaleUpdateBase and its line/payment bases);
# everything else in a sale read from the API is read-only and must not be sent back.
SALE_WRITABLE = (
    "id",
    "source_id",
    "register_id",
    "customer_id",
    "user_id",
    "sale_date",
    "note",
    "status",
    "state",
    "register_sale_attributes",
    "short_code",
    "invoice_number",
    "accounts_transaction_id",
)
LINE_WRITABLE = (
    "id",
    "product_id",
    "register_id",
    "sequence",
    "quantity",
    "price",
    "cost",
    "price_set",
    "discount",
    "loyalty_value",
    "tax",
    "tax_id",
    "status",
    "attributes",
)
PAYMENT_WRITABLE = ("id", "register_id", "retailer_payment_type_id", "payment_date", "amount")


def sale_write_payload(sale: RegisterSale) -> dict[str, Any]:
    """The whole sale as ``POST /api/register_sales`` takes it: writable fields only.

    X-Series replaces a sale with what is posted (omitted lines are deleted), so this keeps
    every line and payment, and drops the read-only parts (``taxes``, ``totals`` ...).
    """
    payload = _pick(sale, SALE_WRITABLE)
    payload["register_sale_products"] = [_pick(line, LINE_WRITABLE) for line in sale.lines]
    payload["register_sale_payments"] = [_pick(p, PAYMENT_WRITABLE) for p in sale.payments]
    return payload


def _pick(model: BaseModel, names: tuple[str, ...]) -> dict[str, Any]:
    data = model.model_dump(include=set(names), exclude_none=True)
    return {name: data[name] for name in names if name in data}


def timestamp(moment: datetime) -> str:
    """A date as the 0.9 API writes it: "YYYY-MM-DD HH:MM:SS", UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class PaymentWrite:
    """A payment to add to a sale (swagger RegisterSalePaymentUpdateBase)."""

    payment_type_id: str
    amount: Decimal
    paid_at: datetime
    register_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "retailer_payment_type_id": self.payment_type_id,
            "amount": self.amount,
            "payment_date": timestamp(self.paid_at),
        }
        if self.register_id:
            body["register_id"] = self.register_id
        return body


@dataclass(frozen=True)
class LineWrite:
    """A new line (swagger RegisterSaleProductUpdateBase); ``loyalty_value`` per unit."""

    product_id: str
    quantity: Decimal
    price: Decimal
    tax: Decimal
    tax_id: str
    loyalty_value: Decimal

    def as_json(self) -> dict[str, Any]:
        return {
            "product_id": self.product_id,
            "quantity": self.quantity,
            "price": self.price,
            "tax": self.tax,
            "tax_id": self.tax_id,
            "loyalty_value": self.loyalty_value,
        }


@dataclass(frozen=True)
class NewSale:
    """A sale to create (swagger RegisterSaleUpdateBase without ``id``)."""

    source_id: str
    register_id: str
    user_id: str
    status: str
    sale_date: datetime
    lines: Sequence[LineWrite]
    payments: Sequence[PaymentWrite]
    customer_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "source_id": self.source_id,
            "register_id": self.register_id,
            "user_id": self.user_id,
            "status": self.status,
            "sale_date": timestamp(self.sale_date),
            "register_sale_products": [line.as_json() for line in self.lines],
            "register_sale_payments": [payment.as_json() for payment in self.payments],
        }
        if self.customer_id:
            body["customer_id"] = self.customer_id
        return body


# The state a status means (X-Series' sales states and attributes, 2025-09).
STATE_OF_STATUS = {
    "SAVED": "parked",
    "CLOSED": "closed",
    "VOIDED": "voided",
    "ONACCOUNT": "pending",
    "ONACCOUNT_CLOSED": "closed",
    "LAYBY": "pending",
    "LAYBY_CLOSED": "closed",
}


def payment_added(sale: RegisterSale, payment: PaymentWrite, *, status: str) -> dict[str, Any]:
    """``sale`` written back whole, every line as it was read (lines may be CONFIRMED, i.e.
    read-only), with one more payment and ``status`` (and the state it means)."""
    payload = sale_write_payload(sale)
    payload["register_sale_payments"].append(payment.as_json())
    payload["status"] = status
    if "state" in payload and status in STATE_OF_STATUS:
        payload["state"] = STATE_OF_STATUS[status]
    return payload
