"""Each GraphQL operation, counted by name and outcome, and named in the request's logs.

The name is the caller's word, so it is bounded before it becomes a label: a plain GraphQL
name (ASCII, at most ``MAX_NAME`` characters) or ``other``; a document without a name is
``anonymous``; and once ``MAX_NAMES`` distinct names have been counted, a new one is
``other`` in /metrics (the logs still say it), so callers inventing names cannot grow the
series without end. The outcome is ``ok``, the type name of the first error member the
operation answered (``InsufficientBalanceError``), or ``error`` when it has top-level
errors (a malformed request, a fault, a query's failure without a union).
"""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from gateway import telemetry
from gateway.metrics import GRAPHQL_OPERATIONS

MAX_NAME = 64
MAX_NAMES = 200
ANONYMOUS = "anonymous"
OTHER = "other"
counted: set[str] = set()  # the names given a series of their own, in this process


def operation_label(name: str | None) -> str:
    if name is None:
        return ANONYMOUS
    if len(name) <= MAX_NAME and name.isascii() and name.isidentifier():
        return name
    return OTHER


def _bounded(label: str) -> str:
    if label in counted:
        return label
    if len(counted) >= MAX_NAMES:
        return OTHER
    counted.add(label)
    return label


class Observe(SchemaExtension):
    def on_execute(self) -> Iterator[None]:
        # Parsed by now: the name is the document's when the request named none.
        telemetry.note_operation(operation_label(self.execution_context.operation_name))
        yield

    def on_operation(self) -> Iterator[None]:
        outcome = "error"  # unless it ends as below: an exception is a fault
        try:
            yield
            context = self.execution_context
            result = context.result
            if context.pre_execution_errors or (result is not None and result.errors):
                outcome = "error"
            else:
                record = telemetry.current()
                outcome = (record.error_member if record else None) or "ok"
        finally:
            label = _bounded(operation_label(self.execution_context.operation_name))
            GRAPHQL_OPERATIONS.labels(operation=label, outcome=outcome).inc()
