"""Whether anyone is waiting on the work in hand.

Every POS call spends the POS account's rate budget (``gateway/pos/budget.py``). A cashier
or a frontend waiting on an answer must not find it spent by work nobody is waiting on:
the recovery worker, webhook registration at start-up, points earned from a Kounta
webhook (Kounta retries those). Such work runs inside ``background()`` and stops first,
leaving the rest of each window to callers (``GATEWAY_UPSTREAM_BUDGET_RESERVE``). Like the
deadline (``gateway/deadline.py``), the mark travels with the task: a task started inside
the block keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_background: ContextVar[bool] = ContextVar("gateway_background", default=False)


@contextmanager
def background() -> Iterator[None]:
    """Everything in the block is work no caller waits on."""
    token = _background.set(True)
    try:
        yield
    finally:
        _background.reset(token)


def is_background() -> bool:
    return _background.get()
