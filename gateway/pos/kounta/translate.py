"""Kounta payloads in the gateway's own terms (domain values)."""

from __future__ import annotations

from decimal import Decimal

from gateway.domain import customers, sales
from gateway.domain.merchant import Pos
from gateway.pos.kounta.models import Customer, Order


def to_customer(customer: Customer, *, balance: Decimal, member: bool) -> customers.Customer:
    return customers.Customer(
        pos=Pos.KOUNTA,
        pos_id=customer.id,
        first_name=customer.first_name,
        last_name=customer.last_name or None,
        email=customer.email,
        loyalty_enabled=member,
        balance=balance,
    )


def to_sale(order: Order, loyalty_method_id: str | None, earned: Decimal | None) -> sales.Sale:
    """A Kounta order as a sale; line prices include the line's and the order's
    ``price_variation``."""
    lines = []
    for line in order.lines:
        price, tax = order.line_amounts(line)
        lines.append(
            sales.SaleLine(
                product_id=line.product_id or "",
                quantity=line.quantity,
                price=price,
                tax=tax,
                loyalty_value=Decimal(0),
                name=line.product.name if line.product else None,
            )
        )
    payments = tuple(
        sales.Payment(
            name=payment.method.name if payment.method else "Payment",
            amount=payment.amount,
            is_loyalty=bool(loyalty_method_id) and payment.method_id == loyalty_method_id,
            id=payment.ref or payment.id,
        )
        for payment in order.payments
    )
    return sales.Sale(
        pos=Pos.KOUNTA,
        pos_id=order.id,
        status=order.status,
        customer_pos_id=order.customer_ref,
        lines=tuple(lines),
        payments=payments,
        total_price=order.total - order.total_tax,
        total_tax=order.total_tax,
        sale_date=order.created_at.isoformat() if order.created_at else None,
        loyalty_earned=earned,
    )
