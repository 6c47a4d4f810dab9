"""The one error vocabulary: a class per ``ErrorCode``, caught by type.

Every expected failure is a ``GatewayError`` whose class says what happened; entry points
turn it into their own shape (a GraphQL union member, a Kounta ``{"error": ...}``) by
looking its code up in a table, and services catch the classes they can act on::

    GatewayError                      an expected failure; message safe to show a caller
    ├── ValidationError               VALIDATION: the input is wrong (``field`` names it)
    ├── NotFound                      NOT_FOUND: unknown, or another merchant's
    ├── Unauthorized                  UNAUTHORIZED
    ├── LoyaltyDisabled               LOYALTY_DISABLED: the store's programme is off
    ├── CustomerLoyaltyDisabled       CUSTOMER_LOYALTY_DISABLED
    ├── InsufficientBalance           INSUFFICIENT_BALANCE (details: balance, requested)
    ├── AmountExceedsDue              AMOUNT_EXCEEDS_DUE (details: amount_due, requested)
    ├── SaleNotOpen                   SALE_NOT_OPEN: closed, voided, or gone for good
    ├── IdempotencyKeyReused          IDEMPOTENCY_KEY_REUSED
    └── Transient                     nothing was decided: retry with the same key
        ├── RateLimited               RATE_LIMITED (details: retry_after_s)
        ├── Unavailable               UPSTREAM_UNAVAILABLE: the POS (or we) could not answer
        ├── OutcomePending            OUTCOME_PENDING: a write's answer was lost; it is
        │                             settled by reading the POS back (details: retry_after_s)
        └── PosDisconnected           POS_DISCONNECTED: the merchant's POS is not connected
                                      (or must be reconnected); work resumes once it is

The POS layer's own failures (``gateway/pos/errors.py``) subclass these, so an
``UpstreamNotFound`` is also a ``NotFound``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Self

# A wait longer than this is not a wait a caller can act on; it is said as this.
MAX_RETRY_AFTER_S = 3600


class ErrorCode(StrEnum):
    VALIDATION = "VALIDATION"
    NOT_FOUND = "NOT_FOUND"
    UNAUTHORIZED = "UNAUTHORIZED"
    LOYALTY_DISABLED = "LOYALTY_DISABLED"
    CUSTOMER_LOYALTY_DISABLED = "CUSTOMER_LOYALTY_DISABLED"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    AMOUNT_EXCEEDS_DUE = "AMOUNT_EXCEEDS_DUE"
    SALE_NOT_OPEN = "SALE_NOT_OPEN"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    RATE_LIMITED = "RATE_LIMITED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    OUTCOME_PENDING = "OUTCOME_PENDING"
    POS_DISCONNECTED = "POS_DISCONNECTED"


class GatewayError(Exception):
    """An expected failure with a stable code and a message safe to show a caller."""

    code: ClassVar[ErrorCode]
    transient: ClassVar[bool] = False

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        # Facts a caller can act on (a balance, the amount due, seconds to wait), as text.
        self.details: dict[str, str] = dict(details or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value}: {self.message})"


class ValidationError(GatewayError):
    code = ErrorCode.VALIDATION


class NotFound(GatewayError):
    code = ErrorCode.NOT_FOUND


class Unauthorized(GatewayError):
    code = ErrorCode.UNAUTHORIZED


class LoyaltyDisabled(GatewayError):
    code = ErrorCode.LOYALTY_DISABLED


class CustomerLoyaltyDisabled(GatewayError):
    code = ErrorCode.CUSTOMER_LOYALTY_DISABLED


class InsufficientBalance(GatewayError):
    code = ErrorCode.INSUFFICIENT_BALANCE

    @classmethod
    def of(cls, balance: Decimal, requested: Decimal, label: str = "loyalty") -> Self:
        return cls(
            f"the customer has {balance} {label}; {requested} was asked for",
            details={"balance": str(balance), "requested": str(requested)},
        )


class AmountExceedsDue(GatewayError):
    code = ErrorCode.AMOUNT_EXCEEDS_DUE

    @classmethod
    def of(cls, amount_due: Decimal, requested: Decimal) -> Self:
        return cls(
            f"only {amount_due} is due on this sale; {requested} was asked for",
            details={"amount_due": str(amount_due), "requested": str(requested)},
        )


class SaleNotOpen(GatewayError):
    code = ErrorCode.SALE_NOT_OPEN


class IdempotencyKeyReused(GatewayError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED

    def __init__(
        self,
        message: str = "this idempotency key was already used for a different request; "
        "use a new key",
        *,
        field: str | None = "idempotencyKey",
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, field=field, details=details)


class Transient(GatewayError):
    """Nothing was decided for good: the same request, with the same key, may be retried."""

    transient = True

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        field: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, field=field, details=details)
        if retry_after_s is not None:
            self.details["retry_after_s"] = str(whole_seconds(retry_after_s))

    @property
    def retry_after_s(self) -> int | None:
        value = self.details.get("retry_after_s")
        return int(value) if value and value.isdigit() else None


class RateLimited(Transient):
    code = ErrorCode.RATE_LIMITED


class Unavailable(Transient):
    code = ErrorCode.UPSTREAM_UNAVAILABLE


class OutcomePending(Transient):
    """A write to a POS whose answer was lost: neither repeated nor undone until the POS is
    read back, after the settle window (docs/architecture.md, "Settling")."""

    code = ErrorCode.OUTCOME_PENDING


class PosDisconnected(Transient):
    """The merchant's POS is not connected, or its connection must be renewed by the
    merchant: nothing was done there; the same request succeeds once it is connected."""

    code = ErrorCode.POS_DISCONNECTED


def whole_seconds(seconds: float) -> int:
    """A wait as whole seconds a caller can act on: rounded up, never negative, capped."""
    if math.isnan(seconds):
        return MAX_RETRY_AFTER_S
    return max(0, min(MAX_RETRY_AFTER_S, math.ceil(min(seconds, MAX_RETRY_AFTER_S))))


BY_CODE: dict[ErrorCode, type[GatewayError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        NotFound,
        Unauthorized,
        LoyaltyDisabled,
        CustomerLoyaltyDisabled,
        InsufficientBalance,
        AmountExceedsDue,
        SaleNotOpen,
        IdempotencyKeyReused,
        RateLimited,
        Unavailable,
        OutcomePending,
        PosDisconnected,
    )
}


def restore(
    code: str, message: str, field: str | None = None, details: dict[str, str] | None = None
) -> GatewayError:
    """An error as it was recorded (an idempotent request's first answer)."""
    try:
        cls = BY_CODE[ErrorCode(code)]
    except ValueError:
        cls = Unavailable
    return cls(message, field=field, details=details)
