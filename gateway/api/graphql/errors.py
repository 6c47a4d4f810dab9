"""Expected failures as GraphQL types (DESIGN §4): each implements ``Error``.

Mutations return them as members of their result unions; queries whose contract has no
union raise them as top-level errors carrying ``extensions.code``.
"""

from __future__ import annotations

from decimal import Decimal

import strawberry
from graphql import GraphQLError

from gateway.domain.errors import ErrorCode, GatewayError

strawberry.enum(ErrorCode, name="ErrorCode")


@strawberry.interface(description="An expected failure: a stable code and a readable message.")
class Error:
    code: ErrorCode
    message: str


@strawberry.type
class ValidationError(Error):
    field: str | None = strawberry.field(description="The input field at fault, when known.")


@strawberry.type
class NotFoundError(Error):
    pass


@strawberry.type
class UnauthorizedError(Error):
    pass


@strawberry.type
class LoyaltyDisabledError(Error):
    pass


@strawberry.type
class CustomerLoyaltyDisabledError(Error):
    pass


@strawberry.type
class InsufficientBalanceError(Error):
    balance: Decimal | None
    requested: Decimal | None


@strawberry.type
class AmountExceedsDueError(Error):
    amount_due: Decimal | None
    requested: Decimal | None


@strawberry.type
class SaleNotOpenError(Error):
    pass


@strawberry.type
class IdempotencyKeyReusedError(Error):
    pass


@strawberry.type
class RateLimitedError(Error):
    retry_after_seconds: int | None = strawberry.field(
        description="When the POS said how long to wait."
    )


@strawberry.type
class UpstreamUnavailableError(Error):
    pass


ERROR_TYPES = (
    ValidationError,
    NotFoundError,
    UnauthorizedError,
    LoyaltyDisabledError,
    CustomerLoyaltyDisabledError,
    InsufficientBalanceError,
    AmountExceedsDueError,
    SaleNotOpenError,
    IdempotencyKeyReusedError,
    RateLimitedError,
    UpstreamUnavailableError,
)


def _decimal(details: dict[str, str], key: str) -> Decimal | None:
    return Decimal(details[key]) if key in details else None


def to_graphql(error: GatewayError) -> Error:
    """The union member for a failure; every code has exactly one type."""
    code = ErrorCode(error.code)
    message = error.message
    details = error.details
    match error.code:
        case ErrorCode.VALIDATION:
            return ValidationError(code=code, message=message, field=error.field)
        case ErrorCode.NOT_FOUND:
            return NotFoundError(code=code, message=message)
        case ErrorCode.UNAUTHORIZED:
            return UnauthorizedError(code=code, message=message)
        case ErrorCode.LOYALTY_DISABLED:
            return LoyaltyDisabledError(code=code, message=message)
        case ErrorCode.CUSTOMER_LOYALTY_DISABLED:
            return CustomerLoyaltyDisabledError(code=code, message=message)
        case ErrorCode.INSUFFICIENT_BALANCE:
            return InsufficientBalanceError(
                code=code,
                message=message,
                balance=_decimal(details, "balance"),
                requested=_decimal(details, "requested"),
            )
        case ErrorCode.AMOUNT_EXCEEDS_DUE:
            return AmountExceedsDueError(
                code=code,
                message=message,
                amount_due=_decimal(details, "amount_due"),
                requested=_decimal(details, "requested"),
            )
        case ErrorCode.SALE_NOT_OPEN:
            return SaleNotOpenError(code=code, message=message)
        case ErrorCode.IDEMPOTENCY_KEY_REUSED:
            return IdempotencyKeyReusedError(code=code, message=message)
        case ErrorCode.RATE_LIMITED:
            wait = details.get("retry_after_s")
            return RateLimitedError(
                code=code, message=message, retry_after_seconds=round(float(wait)) if wait else None
            )
    return UpstreamUnavailableError(code=code, message=message)


def top_level(error: GatewayError) -> GraphQLError:
    """For fields whose contract has no union: a top-level error with the code."""
    extensions: dict[str, object] = {"code": error.code.value}
    if error.field:
        extensions["field"] = error.field
    return GraphQLError(error.message, extensions=extensions)
