"""The one error vocabulary: every expected failure carries an ``ErrorCode`` (DESIGN §4).

Entry points turn a ``GatewayError`` into their own shape (a GraphQL union member, a
Kounta ``{"error": ...}``); nothing else decides what a failure is called.
"""

from __future__ import annotations

from enum import StrEnum


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


# Failures worth retrying with the same idempotency key: nothing was decided.
TRANSIENT_CODES = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UPSTREAM_UNAVAILABLE})


class GatewayError(Exception):
    """An expected failure with a stable code and a message safe to show a caller."""

    code: ErrorCode = ErrorCode.VALIDATION

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        field: str | None = None,
        details: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        # Facts a caller can act on (a balance, the amount due, seconds to wait), as text.
        self.details: dict[str, str] = details or {}

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value}: {self.message})"


class ValidationError(GatewayError):
    code = ErrorCode.VALIDATION


class NotFound(GatewayError):
    code = ErrorCode.NOT_FOUND
