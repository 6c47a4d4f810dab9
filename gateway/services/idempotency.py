"""Exactly-once operations: every money-moving use case runs through ``run_once``.

- same key, same input: the first answer (success or business error), nothing re-done;
- same key, other input: ``IDEMPOTENCY_KEY_REUSED``;
- two calls at once with one key: one executes (it holds the key's lease,
  ``store/leases.py``), the other waits for its answer;
- an attempt that ends without an answer (POS unavailable, rate limited, an unsettled
  write, a crash) leaves its checkpoint; the next attempt with the key resumes from it and
  reconciles with the POS before writing anything again;
- the worker resumes an attempt that died (``recover=True``): it finishes or undoes what was
  started, and never starts a POS write the caller did not see happen.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any, TypeVar

import orjson
import structlog
from pydantic import TypeAdapter

from gateway import deadline
from gateway.domain import errors
from gateway.domain.errors import GatewayError, Unavailable, ValidationError
from gateway.store.idempotency import IdempotencyStore, KeyRecord
from gateway.store.leases import Lease, LeaseBusy, LeaseLost, Leases

T = TypeVar("T")
log = structlog.get_logger("gateway.idempotency")

MAX_KEY_LENGTH = 200  # a caller's key; stored with its key space in front
WAIT_FOR_OTHER_S = 60.0
POLL_START_S = 0.01
POLL_MAX_S = 0.2


class LeftForRetry(Unavailable):
    """Recovery found nothing sent that it must finish: the operation stays as it was, and
    the caller's retry with the same key starts it afresh."""


class Attempt:
    """What one execution knows about earlier attempts, and how it records progress."""

    def __init__(
        self, store: IdempotencyStore, lease: Lease, record: KeyRecord, *, recover: bool
    ) -> None:
        self._store = store
        self.lease = lease
        self.merchant_id = record.merchant_id
        self.key = record.key
        self.checkpoint = record.checkpoint
        # The worker resuming a dead attempt: finish or undo, never start a new write.
        self.recover = recover

    @property
    def resumed(self) -> bool:
        return self.checkpoint is not None

    async def save(self, checkpoint: dict[str, Any]) -> None:
        """Record progress before an irreversible step, so a retry can reconcile. Also
        proves, in the store, that this attempt still holds the key."""
        self.lease.ensure_held()
        if not await self._store.save_checkpoint(
            self.lease, self.merchant_id, self.key, checkpoint
        ):
            raise LeaseLost("this request's lease was taken over; retry with the same key")
        self.checkpoint = checkpoint


def fingerprint(operation: str, request: Mapping[str, Any]) -> str:
    canonical = json.dumps({"op": operation, "request": request}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationError(
            f"idempotencyKey must be 1 to {MAX_KEY_LENGTH} printable characters",
            field="idempotencyKey",
        )
    return key


def lease_name(merchant_id: str, key: str) -> str:
    digest = hashlib.sha256(f"{merchant_id}\x00{key}".encode()).hexdigest()[:40]
    return f"key:{digest}"


class Idempotency:
    def __init__(self, store: IdempotencyStore, leases: Leases) -> None:
        self.store = store
        self.leases = leases

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
        ("earning", "offer"): no caller key can collide with ours."""
        stored = f"{key_space}:{check_key(key)}"
        print_ = fingerprint(operation, request)
        ends = time.monotonic() + deadline.bound(WAIT_FOR_OTHER_S)
        pause = POLL_START_S
        while True:
            found = await self.store.get(merchant_id, stored)
            if found is not None:
                found.check(operation, print_)
                if found.completed:
                    return _decode(found, adapter)
            try:
                async with self.leases.hold(lease_name(merchant_id, stored), wait_s=0) as lease:
                    record = await self.store.begin(lease, merchant_id, stored, operation, print_)
                    if record.completed:
                        return _decode(record, adapter)
                    attempt = Attempt(self.store, lease, record, recover=False)
                    return await self._execute(attempt, execute, adapter)
            except LeaseBusy:
                remaining = ends - time.monotonic()
                if remaining <= 0:
                    raise Unavailable(
                        "a request with this idempotency key is still being processed; "
                        "retry with the same key shortly"
                    ) from None
                await self.leases.wait_released(
                    lease_name(merchant_id, stored), min(pause, remaining)
                )
                pause = min(pause * 2, POLL_MAX_S)

    async def recover(
        self,
        record: KeyRecord,
        execute: Callable[[Attempt], Awaitable[T]],
        adapter: TypeAdapter[T],
        *,
        answered: bool = False,
    ) -> T | None:
        """Resume an attempt nobody is working on (the worker): None if someone is, or it
        has finished meanwhile. ``answered``: finish the work of one whose answer is already
        recorded (the answer stays as it was: a caller may have seen it)."""
        name = lease_name(record.merchant_id, record.key)
        try:
            async with self.leases.hold(name, wait_s=0) as lease:
                current = await self.store.begin(
                    lease, record.merchant_id, record.key, record.operation, record.fingerprint
                )
                attempt = Attempt(self.store, lease, current, recover=True)
                if current.completed:
                    return await execute(attempt) if answered else None
                return await self._execute(attempt, execute, adapter)
        except LeaseBusy:
            return None

    async def _execute(
        self, attempt: Attempt, execute: Callable[[Attempt], Awaitable[T]], adapter: TypeAdapter[T]
    ) -> T:
        try:
            result = await execute(attempt)
        except GatewayError as error:
            if error.transient:
                await self._release(attempt)
            else:
                await self._finish(attempt, _encode_error(error))
            raise
        except BaseException:
            # No answer to keep (a bug, a cancellation): the next attempt resumes.
            with suppress(Exception):
                await self._release(attempt)
            raise
        await self._finish(attempt, adapter.dump_json(result).decode())
        return result

    async def _finish(self, attempt: Attempt, result: str) -> None:
        await asyncio.shield(
            self.store.complete(attempt.lease, attempt.merchant_id, attempt.key, result)
        )

    async def _release(self, attempt: Attempt) -> None:
        await asyncio.shield(self.store.release(attempt.lease, attempt.merchant_id, attempt.key))


def _encode_error(error: GatewayError) -> str:
    body = {
        "code": error.code.value,
        "message": error.message,
        "field": error.field,
        "details": error.details,
    }
    return orjson.dumps({"error": body}).decode()


def _decode(record: KeyRecord, adapter: TypeAdapter[T]) -> T:
    data = orjson.loads(record.result_json or "null")
    if isinstance(data, dict) and set(data) == {"error"}:
        error = data["error"]
        raise errors.restore(
            error["code"], error["message"], error.get("field"), error.get("details") or {}
        )
    return adapter.validate_python(data)
