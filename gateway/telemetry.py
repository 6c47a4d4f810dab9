"""What one request spent, and on what: time in POS calls and in the database, the number
of POS calls, the merchant and the GraphQL operation it was for.

The request middleware (``gateway/api/middleware.py``) starts a record per request; the
HTTP layer (``gateway/pos/http.py``) and the database handle (``gateway/store/db.py``)
add to it; the answer's ``Server-Timing`` header and the access log line read it (so does
every log line, ``gateway/observability.py``). Work outside a request (the worker) has no
record, and adding to none costs one context variable read.

Times are wall time with at least one call in flight: two POS called at once for 30 ms
each count 30 ms, not 60, so ``total - upstream`` is what the gateway added on the
critical path (issue 11's "added latency"). Like the deadline (``gateway/deadline.py``),
the record travels with the tasks a request starts.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

_record: ContextVar[Record | None] = ContextVar("gateway_request_record", default=None)


class _Clock:
    """Wall time during which at least one of possibly overlapping calls was in flight."""

    __slots__ = ("busy_s", "in_flight", "since")

    def __init__(self) -> None:
        self.busy_s = 0.0
        self.in_flight = 0
        self.since = 0.0

    def begin(self) -> None:
        if self.in_flight == 0:
            self.since = time.perf_counter()
        self.in_flight += 1

    def end(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.busy_s += time.perf_counter() - self.since


class Record:
    __slots__ = (
        "db",
        "error_member",
        "merchant_id",
        "operation",
        "request_id",
        "upstream",
        "upstream_calls",
    )

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.merchant_id: str | None = None
        self.operation: str | None = None
        self.error_member: str | None = None  # the first GraphQL error member answered
        self.upstream = _Clock()
        self.upstream_calls = 0
        self.db = _Clock()

    def server_timing(self, total_s: float) -> bytes:
        """The ``Server-Timing`` header's value (W3C syntax, milliseconds)."""
        return (
            f"upstream;dur={self.upstream.busy_s * 1000:.3f}, "
            f"db;dur={self.db.busy_s * 1000:.3f}, total;dur={total_s * 1000:.3f}"
        ).encode()


def start(request_id: str) -> tuple[Record, Token[Record | None]]:
    record = Record(request_id)
    return record, _record.set(record)


def stop(token: Token[Record | None]) -> None:
    _record.reset(token)


def current() -> Record | None:
    return _record.get()


def upstream_begin() -> Record | None:
    """A POS call starts; pass what this returns to ``upstream_end``."""
    record = _record.get()
    if record is not None:
        record.upstream_calls += 1
        record.upstream.begin()
    return record


def upstream_end(record: Record | None) -> None:
    if record is not None:
        record.upstream.end()


def db_begin() -> Record | None:
    """A database session starts; pass what this returns to ``db_end``."""
    record = _record.get()
    if record is not None:
        record.db.begin()
    return record


def db_end(record: Record | None) -> None:
    if record is not None:
        record.db.end()


def note_merchant(merchant_id: str) -> None:
    """The request acts for this merchant (its log lines say so from now on)."""
    record = _record.get()
    if record is not None:
        record.merchant_id = merchant_id


def note_operation(name: str) -> None:
    record = _record.get()
    if record is not None:
        record.operation = name


def note_error_member(typename: str) -> None:
    """A GraphQL field answered an expected failure (its operation's outcome, if first)."""
    record = _record.get()
    if record is not None and record.error_member is None:
        record.error_member = typename
