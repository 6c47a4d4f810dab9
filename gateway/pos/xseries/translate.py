"""X-Series payloads in the gateway's own terms (domain values)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.domain import customers, sales
from gateway.domain.merchant import Pos
from gateway.pos.xseries.models import (
    LOYALTY_PAYMENT_TYPE_ID,
    Customer,
    PaymentType,
    RegisterSale,
)


def to_customer(customer: Customer) -> customers.Customer:
    return customers.Customer(
        pos=Pos.XSERIES,
        pos_id=customer.id,
        first_name=customer.first_name,
        last_name=customer.last_name or None,
        email=customer.email,
        loyalty_enabled=customer.enable_loyalty,
        balance=customer.loyalty_balance,
        group_id=customer.customer_group_id,
        code=customer.customer_code or None,
    )


def to_sale(sale: RegisterSale, payment_types: Sequence[PaymentType]) -> sales.Sale:
    by_id = {payment_type.id: payment_type for payment_type in payment_types}
    lines = tuple(
        sales.SaleLine(
            product_id=line.product_id,
            quantity=line.quantity,
            price=line.price,
            tax=line.tax,
            loyalty_value=line.loyalty_value,
            name=line.name,
            tax_id=line.tax_id,
        )
        for line in sale.lines
    )
    payments = []
    for payment in sale.payments:
        known = by_id.get(payment.retailer_payment_type_id)
        is_loyalty = payment.payment_type_id == LOYALTY_PAYMENT_TYPE_ID or bool(
            known and known.is_loyalty
        )
        name = payment.name or (known.name if known else "Payment")
        payments.append(sales.Payment(name, payment.amount, is_loyalty, payment.id))
    total_price, total_tax = sales.totals(lines)
    return sales.Sale(
        pos=Pos.XSERIES,
        pos_id=sale.id,
        status=sale.status,
        customer_pos_id=sale.customer_id,
        lines=lines,
        payments=tuple(payments),
        total_price=total_price,
        total_tax=total_tax,
        sale_date=sale.sale_date,
    )
