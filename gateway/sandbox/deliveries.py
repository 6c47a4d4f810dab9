"""Webhook deliveries sent in the background, and the log tests read them from.

A POS sends its webhooks after the change that caused them, on its own time: the API request
that made the change does not wait for them, and a receiver that is slow or down does not
slow or fail that request. ``Outbox.send`` therefore starts each delivery as a task of its
own and returns at once; when it ends, its outcome (the receiver's status, or the error) is
appended to the log that ``GET /_sandbox/webhooks/deliveries`` shows, with ``pending``, the
deliveries still under way, so a test waits for them to end instead of sleeping.

A failed delivery is not retried here (the real X-Series retries for up to 48 hours):
a test must not rely on a retry, and the gateway must not either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["Deliver", "Outbox", "deliver_over_http"]

Deliver = Callable[[str, Mapping[str, str], bytes], Awaitable[int]]
"""Sends one webhook: (address, headers, body) -> the receiver's HTTP status; raises on failure."""


async def deliver_over_http(
    address: str, headers: Mapping[str, str], body: bytes, timeout_s: float = 10.0
) -> int:
    """The default webhook sender: one POST within ``timeout_s``; a failure raises."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        response = await client.post(address, headers=dict(headers), content=body)
    return response.status_code


class Outbox:
    """Deliveries in flight and the log of those that ended; ``reset`` starts a new log
    (a delivery still in flight then ends in the old one, unseen)."""

    def __init__(self, deliver: Deliver) -> None:
        self.deliver = deliver
        self.log: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def send(
        self, address: str, headers: Mapping[str, str], body: bytes, record: Mapping[str, Any]
    ) -> None:
        """Starts one delivery; ``record`` says what it was, in the log."""
        task = asyncio.get_running_loop().create_task(
            self._deliver(self.log, address, headers, body, dict(record))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self,
        log: list[dict[str, Any]],
        address: str,
        headers: Mapping[str, str],
        body: bytes,
        record: dict[str, Any],
    ) -> None:
        try:
            status = await self.deliver(address, headers, body)
        except Exception as exc:
            log.append({**record, "status": None, "error": f"{type(exc).__name__}: {exc}"})
            return
        error = None if 200 <= status < 300 else f"the receiver answered {status}"
        log.append({**record, "status": status, "error": error})

    async def drain(self) -> None:
        """Until every delivery started so far has ended (for tests in the same loop)."""
        while self._tasks:
            await asyncio.gather(*self._tasks)

    def reset(self) -> None:
        self.log = []

    def admin_routes(self) -> list[Route]:
        return [
            Route("/_sandbox/webhooks/deliveries", self._get, methods=["GET"]),
            Route("/_sandbox/webhooks/deliveries", self._delete, methods=["DELETE"]),
        ]

    async def _get(self, request: Request) -> Response:
        return JSONResponse({"pending": self.pending, "deliveries": self.log})

    async def _delete(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"pending": self.pending, "deliveries": self.log})
