"""The schema and its guard rails.

Extensions are passed as factories, so each request gets its own extension objects:
Strawberry 0.341 assigns ``extension.execution_context`` per request onto the object, so a
shared instance is overwritten by concurrent requests. But factories can defeat the
validation cache, each call building new rule classes; here the depth and alias rules
are built ONCE and every request's extension carries those same
classes, so the cache key (document, rules) stays stable. The parse and validation LRU
caches are module-level in this Strawberry version, shared by all requests.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as PyDecimal

import strawberry
import structlog
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gateway.api.graphql.errors import ERROR_TYPES
from gateway.api.graphql.mutations import Mutation
from gateway.api.graphql.observe import Observe
from gateway.api.graphql.operations import OneOperation
from gateway.api.graphql.queries import Query
from gateway.api.graphql.scalars import DECIMAL, SIGNED_DECIMAL, SignedDecimal
from gateway.domain.errors import GatewayError
from gateway.settings import Settings

log = structlog.get_logger("gateway.graphql")

MAX_TOKENS = 5000
CACHE_SIZE = 256


def unexpected(error: GraphQLError) -> bool:
    """Mask only a fault of ours: an error raised while resolving a field (it has a path)
    that carries no code. A caller's own mistake (a syntax error, an unknown field, the
    depth or alias limit, a variable of the wrong type, operationName) is found before
    anything runs, has no path, and is told as it is: masked, it could not be fixed."""
    return error.path is not None and not (error.extensions or {}).get("code")


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """A caller's mistake is one info line; only a fault of ours gets a traceback."""
        for error in errors:
            original = error.original_error
            if original is None or isinstance(original, GraphQLError | GatewayError):
                log.info("graphql request error", error=error.message, path=error.path)
            else:
                log.error("graphql resolver failed", error=error.message, exc_info=original)


def build_schema(settings: Settings) -> strawberry.Schema:
    limits = [
        *QueryDepthLimiter(max_depth=settings.graphql_max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases).validation_rules,
    ]
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=CACHE_SIZE),
        lambda: ValidationCache(maxsize=CACHE_SIZE),
        lambda: AddValidationRules(limits),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        OneOperation,
        Observe,
    ]
    if settings.is_production:
        extensions += [
            DisableIntrospection,
            lambda: MaskErrors(should_mask_error=unexpected, error_message="Internal error."),
        ]
    return Schema(
        query=Query,
        mutation=Mutation,
        types=list(ERROR_TYPES),
        extensions=extensions,
        config=StrawberryConfig(scalar_map={PyDecimal: DECIMAL, SignedDecimal: SIGNED_DECIMAL}),
    )


def schema_sdl() -> str:
    """The published contract (``schema/schema.graphql``), independent of the environment."""
    return build_schema(Settings()).as_str() + "\n"
