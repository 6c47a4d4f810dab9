"""Exactly-once mutations: every money-moving use case runs through ``run_once``.

- same key, same input: the first answer (success or business error), nothing re-done;
- same key, other input: ``IDEMPOTENCY_KEY_REUSED``;
- two calls at once with one key: one executes, the other waits for its answer;
- an attempt that ends without an answer (POS unavailable, rate limited, a crash) leaves
  its checkpoint; the next attempt with the key resumes from it and reconciles with the
  POS before writing anything again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any, TypeVar

import orjson
import structlog
from pydantic import TypeAdapter

from gateway.domain.errors import ErrorCode, GatewayError, ValidationError
from gateway.store.idempotency import ClaimOutcome, IdempotencyStore

T = TypeVar("T")
log = structlog.get_logger("gateway.idempotency")

MAX_KEY_LENGTH = 200  # a caller's key; stored with its key space in front
WAIT_FOR_OTHER_S = 60.0
POLL_START_S = 0.01
POLL_MAX_S = 0.2


class Attempt:
    """What one execution knows about earlier attempts, and how it records progress."""

    def __init__(
        self, store: IdempotencyStore, merchant_id: str, key: str, owner: str,
        checkpoint: dict[str, Any] | None,
    ) -> None:  # fmt: skip
        self._store = store
        self._merchant_id = merchant_id
        self.owner = owner
        self.key = key
        self.checkpoint = checkpoint
        self.lost = False

    @property
    def resumed(self) -> bool:
        return self.checkpoint is not None

    async def save(self, checkpoint: dict[str, Any]) -> None:
        """Record progress before an irreversible step, so a retry can reconcile. Also
        proves, in the store, that this attempt still owns the key."""
        self.ensure_live()
        if not await self._store.save_checkpoint(
            self._merchant_id, self.key, self.owner, checkpoint
        ):
            self.lost = True
            self.ensure_live()
        self.checkpoint = checkpoint

    def ensure_live(self) -> None:
        if self.lost:
            raise GatewayError(
                "this request's idempotency lease was taken over; retry with the same key",
                code=ErrorCode.UPSTREAM_UNAVAILABLE,
            )


def fingerprint(operation: str, request: Mapping[str, Any]) -> str:
    canonical = json.dumps({"op": operation, "request": request}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"idempotencyKey must be 1 to {MAX_KEY_LENGTH} characters", field="idempotencyKey"
        )
    return key


class Idempotency:
    def __init__(self, store: IdempotencyStore) -> None:
        self.store = store
        self._finished: dict[tuple[str, str], asyncio.Event] = {}

    async def run_once(
        self,
        *,
        merchant_id: str,
        key: str,
        operation: str,
        request: Mapping[str, Any],
        execute: Callable[[Attempt], Awaitable[T]],
        adapter: TypeAdapter[T],
        key_space: str = "api",
    ) -> T:
        """``key_space`` keeps callers' keys ("api") apart from the gateway's own
        ("earning", "offer", "redemption"): no caller key can collide with ours."""
        key = f"{key_space}:{check_key(key)}"
        print_ = fingerprint(operation, request)
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + WAIT_FOR_OTHER_S
        pause = POLL_START_S
        while True:
            claim = await self.store.claim(merchant_id, key, operation, print_, owner)
            if claim.outcome is ClaimOutcome.DONE:
                assert claim.result is not None
                return _decode(claim.result, adapter)
            if claim.outcome is ClaimOutcome.EXECUTE:
                attempt = Attempt(self.store, merchant_id, key, owner, claim.checkpoint)
                return await self._execute(attempt, merchant_id, execute, adapter)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GatewayError(
                    "a request with this idempotency key is still being processed; "
                    "retry with the same key shortly",
                    code=ErrorCode.UPSTREAM_UNAVAILABLE,
                )
            event = self._finished.setdefault((merchant_id, key), asyncio.Event())
            with suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(pause, remaining))
            pause = min(pause * 2, POLL_MAX_S)

    async def _execute(
        self,
        attempt: Attempt,
        merchant_id: str,
        execute: Callable[[Attempt], Awaitable[T]],
        adapter: TypeAdapter[T],
    ) -> T:
        heartbeat = asyncio.create_task(self._keep_lease(merchant_id, attempt))
        try:
            try:
                result = await execute(attempt)
            except GatewayError as error:
                if error.transient:
                    raise
                await self._finish(merchant_id, attempt, _encode_error(error))
                raise
            await self._finish(merchant_id, attempt, adapter.dump_json(result).decode())
            return result
        except BaseException:
            # No answer to keep: let the next attempt with this key resume.
            with suppress(Exception):
                await asyncio.shield(self.store.release(merchant_id, attempt.key, attempt.owner))
            self._wake(merchant_id, attempt.key)
            raise
        finally:
            heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await heartbeat

    async def _finish(self, merchant_id: str, attempt: Attempt, result: str) -> None:
        await asyncio.shield(self.store.complete(merchant_id, attempt.key, attempt.owner, result))
        self._wake(merchant_id, attempt.key)

    async def _keep_lease(self, merchant_id: str, attempt: Attempt) -> None:
        """Extend the lease while executing. Losing it (another attempt took over after a
        stall) is remembered: ``Attempt.save`` and ``ensure_live`` then refuse to go on."""
        while True:
            await asyncio.sleep(self.store.lease_s / 3)
            try:
                if not await self.store.renew(merchant_id, attempt.key, attempt.owner):
                    attempt.lost = True
                    return
            except Exception:  # the store hiccuped; the next beat tries again
                log.warning("idempotency lease renewal failed", exc_info=True)

    def _wake(self, merchant_id: str, key: str) -> None:
        event = self._finished.pop((merchant_id, key), None)
        if event is not None:
            event.set()


def _encode_error(error: GatewayError) -> str:
    body = {
        "code": error.code.value,
        "message": error.message,
        "field": error.field,
        "details": error.details,
    }
    return orjson.dumps({"error": body}).decode()


def _decode(raw: str, adapter: TypeAdapter[T]) -> T:
    data = orjson.loads(raw)
    if isinstance(data, dict) and set(data) == {"error"}:
        error = data["error"]
        raise GatewayError(
            error["message"],
            code=ErrorCode(error["code"]),
            field=error.get("field"),
            details=error.get("details") or {},
        )
    return adapter.validate_python(data)
