"""Every entry point answers within its deadline (``gateway/deadline.py``).

The deadline bounds every wait on the way (POS calls and their retries, leases, another
attempt with the same key), so the work normally ends in time on its own, with the error
that says why. The backstop here is for whatever does not: a little after the deadline the
work is cancelled, exactly as a crash would stop it (everything it started is recorded
before it is done and settled later), and the caller is told to try again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from gateway import deadline
from gateway.domain.errors import Unavailable

T = TypeVar("T")
BACKSTOP_GRACE_S = 1.0


async def answer_within(seconds: float, work: Awaitable[T]) -> T:
    with deadline.within(seconds):
        try:
            async with asyncio.timeout(seconds + BACKSTOP_GRACE_S):
                return await work
        except TimeoutError:
            raise Unavailable(
                f"no answer within {seconds:.0f} s (the POS is slow); try again shortly"
            ) from None
