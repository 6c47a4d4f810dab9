"""Expected failures as GraphQL types: each implements ``Error``, one type per ``ErrorCode``.

Mutations return them as members of their result unions; queries whose contract has no
union raise them as top-level errors carrying ``extensions.code``. ``to_graphql`` maps a
failure to its type by a table, never by a chain of branches.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation

import strawberry
from graphql import GraphQLError

from gateway import telemetry
from gateway.domain.errors import ErrorCode, GatewayError, Transient

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


@strawberry.type(
    description="A write to the POS whose answer was lost: it may still land, so nothing "
    "is repeated or undone until the POS is read back. Retry with the same idempotency key "
    "after retryAfterSeconds: the answer is then the settled result."
)
class OutcomePendingError(Error):
    retry_after_seconds: int | None = strawberry.field(
        description="When the outcome will be settled (read back from the POS)."
    )


@strawberry.type(
    description="The merchant's POS is not connected, or must be connected again: nothing was "
    "done there. The same request, with the same key, succeeds once it is."
)
class PosDisconnectedError(Error):
    pass


def _decimal(error: GatewayError, key: str) -> Decimal | None:
    try:
        return Decimal(error.details[key]) if key in error.details else None
    except InvalidOperation:
        return None


def _retry_after(error: GatewayError) -> int | None:
    return error.retry_after_s if isinstance(error, Transient) else None


Build = Callable[[GatewayError, ErrorCode], Error]

# Every code has exactly one type; the builder fills its fields from the failure.
BY_CODE: dict[ErrorCode, tuple[type[Error], Build]] = {
    ErrorCode.VALIDATION: (
        ValidationError,
        lambda e, c: ValidationError(code=c, message=e.message, field=e.field),
    ),
    ErrorCode.NOT_FOUND: (NotFoundError, lambda e, c: NotFoundError(code=c, message=e.message)),
    ErrorCode.UNAUTHORIZED: (
        UnauthorizedError,
        lambda e, c: UnauthorizedError(code=c, message=e.message),
    ),
    ErrorCode.LOYALTY_DISABLED: (
        LoyaltyDisabledError,
        lambda e, c: LoyaltyDisabledError(code=c, message=e.message),
    ),
    ErrorCode.CUSTOMER_LOYALTY_DISABLED: (
        CustomerLoyaltyDisabledError,
        lambda e, c: CustomerLoyaltyDisabledError(code=c, message=e.message),
    ),
    ErrorCode.INSUFFICIENT_BALANCE: (
        InsufficientBalanceError,
        lambda e, c: InsufficientBalanceError(
            code=c,
            message=e.message,
            balance=_decimal(e, "balance"),
            requested=_decimal(e, "requested"),
        ),
    ),
    ErrorCode.AMOUNT_EXCEEDS_DUE: (
        AmountExceedsDueError,
        lambda e, c: AmountExceedsDueError(
            code=c,
            message=e.message,
            amount_due=_decimal(e, "amount_due"),
            requested=_decimal(e, "requested"),
        ),
    ),
    ErrorCode.SALE_NOT_OPEN: (
        SaleNotOpenError,
        lambda e, c: SaleNotOpenError(code=c, message=e.message),
    ),
    ErrorCode.IDEMPOTENCY_KEY_REUSED: (
        IdempotencyKeyReusedError,
        lambda e, c: IdempotencyKeyReusedError(code=c, message=e.message),
    ),
    ErrorCode.RATE_LIMITED: (
        RateLimitedError,
        lambda e, c: RateLimitedError(
            code=c, message=e.message, retry_after_seconds=_retry_after(e)
        ),
    ),
    ErrorCode.UPSTREAM_UNAVAILABLE: (
        UpstreamUnavailableError,
        lambda e, c: UpstreamUnavailableError(code=c, message=e.message),
    ),
    ErrorCode.OUTCOME_PENDING: (
        OutcomePendingError,
        lambda e, c: OutcomePendingError(
            code=c, message=e.message, retry_after_seconds=_retry_after(e)
        ),
    ),
    ErrorCode.POS_DISCONNECTED: (
        PosDisconnectedError,
        lambda e, c: PosDisconnectedError(code=c, message=e.message),
    ),
}

ERROR_TYPES = tuple(error_type for error_type, _ in BY_CODE.values())


def to_graphql(error: GatewayError) -> Error:
    """The union member for a failure (the operation's outcome in /metrics, if first)."""
    error_type, build = BY_CODE[error.code]
    telemetry.note_error_member(error_type.__name__)
    return build(error, error.code)


def top_level(error: GatewayError) -> GraphQLError:
    """For fields whose contract has no union: a top-level error with the code."""
    extensions: dict[str, object] = {"code": error.code.value}
    if error.field:
        extensions["field"] = error.field
    retry = _retry_after(error)
    if retry is not None:
        extensions["retryAfterSeconds"] = retry
    return GraphQLError(error.message, extensions=extensions)
