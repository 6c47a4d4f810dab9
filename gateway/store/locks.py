"""Named locks held in the database, so they hold across processes (DESIGN §2 scale-out).

A lock is a row with an owner and a lease: acquiring is one atomic upsert that succeeds
when the row is absent or its lease has run out; the holder renews the lease while it
works and deletes the row when done. A crashed holder's lock frees itself when the lease
ends. The same mechanism serves SQLite and PostgreSQL; unlike ``SELECT ... FOR UPDATE`` it
pins no pooled connection for the length of a POS call, so twenty waiters cannot starve
the holder of the connection it needs to finish.

Waiters in this process are woken the moment a lock is released here; waiters elsewhere
poll with a short, growing interval. A lock is re-entrant within one task (and the tasks
it awaits): a use case holding a member's balance lock may call another that takes it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.domain.errors import ErrorCode, GatewayError
from gateway.store.db import Database
from gateway.store.models import LockRow

log = structlog.get_logger("gateway.locks")
POLL_START_S = 0.005
POLL_MAX_S = 0.1


class LockTimeout(GatewayError):
    code = ErrorCode.UPSTREAM_UNAVAILABLE


class LockLost(GatewayError):
    """The lease ran out before the holder finished: it must not write anything more.
    Nothing irreversible happened after the loss, so a retry with the same key is safe."""

    code = ErrorCode.UPSTREAM_UNAVAILABLE


# Leases held: name → (lease, the task holding it). Re-entry is for that task only: a task
# it spawns inherits this context but is someone else, and must wait like anyone else.
_held: ContextVar[dict[str, tuple[Lease, object]] | None] = ContextVar(
    "gateway_locks_held", default=None
)


class Lease:
    def __init__(self, name: str, owner: str, ttl_s: float) -> None:
        self.name = name
        self.owner = owner
        self.ttl_s = ttl_s
        self.renewed_at = time.monotonic()
        self.lost = False

    def ensure_held(self) -> None:
        """Call before an irreversible step: refuses once the lease may have passed on."""
        if self.lost or time.monotonic() - self.renewed_at > self.ttl_s * 0.9:
            raise LockLost("the operation was interrupted (lock lost); retry with the same key")


class Locks:
    def __init__(self, db: Database, *, ttl_s: float = 30.0) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._released: dict[str, asyncio.Event] = {}

    @asynccontextmanager
    async def hold(self, name: str, *, timeout_s: float = 30.0) -> AsyncIterator[Lease]:
        held = _held.get() or {}
        task = asyncio.current_task()
        if name in held and held[name][1] is task:  # re-entered by the task holding it
            yield held[name][0]
            return
        lease = Lease(name, uuid.uuid4().hex, self.ttl_s)
        await self._acquire(lease, timeout_s)
        heartbeat = asyncio.create_task(self._renew(lease))
        token = _held.set({**held, name: (lease, task)})
        try:
            yield lease
        finally:
            _held.reset(token)
            heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await heartbeat
            await asyncio.shield(self._release(lease))

    async def _acquire(self, lease: Lease, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pause = POLL_START_S
        while not await self._try_acquire(lease):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(
                    "another operation on this customer is still running; try again shortly"
                )
            event = self._released.setdefault(lease.name, asyncio.Event())
            with suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(pause, remaining))
            pause = min(pause * 2, POLL_MAX_S)
        lease.renewed_at = time.monotonic()

    async def _try_acquire(self, lease: Lease) -> bool:
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=lease.ttl_s)
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        statement = (
            insert(LockRow)
            .values(name=lease.name, owner=lease.owner, expires_at=expires)
            .on_conflict_do_update(
                index_elements=[LockRow.name],
                set_={"owner": lease.owner, "expires_at": expires},
                where=or_(LockRow.expires_at < now, LockRow.owner.is_(None)),
            )
        )
        async with self.db.transaction() as session:
            await session.execute(statement)
            owner = await session.scalar(select(LockRow.owner).where(LockRow.name == lease.name))
        return owner == lease.owner

    async def _renew(self, lease: Lease) -> None:
        """Extend the lease while held; a failed renewal is retried until the lease would
        have run out, when the holder learns it lost it (``ensure_held``)."""
        while True:
            await asyncio.sleep(lease.ttl_s / 3)
            expires = datetime.now(UTC) + timedelta(seconds=lease.ttl_s)
            try:
                async with self.db.transaction() as session:
                    result = await session.execute(
                        update(LockRow)
                        .where(LockRow.name == lease.name, LockRow.owner == lease.owner)
                        .values(expires_at=expires)
                    )
            except Exception:  # the store hiccuped: ensure_held judges by time
                log.warning("lock lease renewal failed", lock=lease.name, exc_info=True)
                continue
            if getattr(result, "rowcount", 0) == 0:
                lease.lost = True
                return
            lease.renewed_at = time.monotonic()

    async def _release(self, lease: Lease) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                delete(LockRow).where(LockRow.name == lease.name, LockRow.owner == lease.owner)
            )
        event = self._released.pop(lease.name, None)
        if event is not None:
            event.set()
