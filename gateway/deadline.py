"""How long the caller at the other end is kept waiting, end to end.

A cashier stands at the counter while Kounta's POS waits on the gateway, so every entry
point sets a deadline for its request (settings ``kounta_deadline_s`` and
``graphql_deadline_s``) and everything that waits (POS calls, their retries and backoff,
a lock, another attempt with the same key) waits at most until then. Work with no caller
(the worker) has no deadline. A deadline only ever shrinks: a nested one cannot extend it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("gateway_deadline", default=None)


@contextmanager
def within(seconds: float | None) -> Iterator[None]:
    """Everything in the block shares one deadline, ``seconds`` from now (None: none)."""
    if seconds is None:
        yield
        return
    ends = time.monotonic() + seconds
    current = _deadline.get()
    token = _deadline.set(ends if current is None else min(current, ends))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left (never negative), or None when there is no deadline."""
    ends = _deadline.get()
    return None if ends is None else max(0.0, ends - time.monotonic())


def bound(seconds: float) -> float:
    """``seconds``, or less if the deadline comes sooner."""
    left = remaining()
    return seconds if left is None else min(seconds, left)
