"""Named leases held in the database: the one mechanism that makes one thing happen at a
time, across processes (docs/architecture.md, "Leases").

A lease is a row with an owner and an expiry. Acquiring is one atomic upsert that wins
when the row is absent or its lease has run out; the holder renews it while it works and
deletes it when done, so a crashed holder's lease frees itself after ``ttl_s`` (setting
``GATEWAY_LEASE_S``). The same mechanism serves SQLite and PostgreSQL; unlike ``SELECT ...
FOR UPDATE`` it pins no pooled connection for the length of a POS call, so twenty waiters
cannot starve the holder of the connection it needs to finish.

What uses it: the balance of a member (one spend at a time), an order or sale (one write at
a time), a Kounta token refresh, and every idempotency key (one attempt at a time: the
record itself has no lease of its own, ``store/idempotency.py``).

Waiters in this process are woken the moment a lease is released here; waiters elsewhere
poll with a short, growing interval. A lease is re-entrant within one task (and the tasks
it awaits): a use case holding a member's balance may call another that takes it.
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
from sqlalchemy import ColumnElement, delete, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway import deadline
from gateway.domain.errors import Unavailable
from gateway.store.db import Database
from gateway.store.models import LockRow

log = structlog.get_logger("gateway.leases")
POLL_START_S = 0.005
POLL_MAX_S = 0.1
DEFAULT_WAIT_S = 30.0


class LeaseBusy(Unavailable):
    """Someone else holds it and did not let go in time: nothing was done."""


class LeaseLost(Unavailable):
    """The lease ran out before the holder finished: it must not write anything more.
    Nothing irreversible happened after the loss, so a retry with the same key is safe."""


# Leases held: name → (lease, the task holding it). Re-entry is for that task only: a task
# it spawns inherits this context but is someone else, and must wait like anyone else.
_held: ContextVar[dict[str, tuple[Lease, object]] | None] = ContextVar(
    "gateway_leases_held", default=None
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
            raise LeaseLost("the operation was interrupted (lease lost); retry with the same key")


class Leases:
    def __init__(self, db: Database, *, ttl_s: float = 30.0) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._released: dict[str, asyncio.Event] = {}

    @asynccontextmanager
    async def hold(
        self,
        name: str,
        *,
        wait_s: float = DEFAULT_WAIT_S,
        busy: str = "another operation on this customer is still running; try again shortly",
    ) -> AsyncIterator[Lease]:
        """Hold ``name`` for the block, waiting up to ``wait_s`` (and never past the
        request's deadline) for its holder to let go; else ``LeaseBusy(busy)``."""
        held = _held.get() or {}
        task = asyncio.current_task()
        if name in held and held[name][1] is task:  # re-entered by the task holding it
            yield held[name][0]
            return
        lease = Lease(name, uuid.uuid4().hex, self.ttl_s)
        await self._acquire(lease, deadline.bound(wait_s), busy)
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

    async def wait_released(self, name: str, timeout_s: float) -> None:
        """Until ``name`` is released in this process, or ``timeout_s`` passes (for others)."""
        event = self._released.setdefault(name, asyncio.Event())
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    def fence(self, lease: Lease) -> ColumnElement[bool]:
        """A condition for a write that only the lease's holder may make: false once the
        lease was lost, so a stalled holder cannot overwrite its successor's work."""
        return exists().where(
            LockRow.name == lease.name,
            LockRow.owner == lease.owner,
            LockRow.expires_at > datetime.now(UTC),
        )

    async def _acquire(self, lease: Lease, wait_s: float, busy: str) -> None:
        ends = time.monotonic() + wait_s
        pause = POLL_START_S
        while not await self._try_acquire(lease):
            remaining = ends - time.monotonic()
            if remaining <= 0:
                raise LeaseBusy(busy)
            await self.wait_released(lease.name, min(pause, remaining))
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
                log.warning("lease renewal failed", lease=lease.name, exc_info=True)
                continue
            if getattr(result, "rowcount", 0) == 0:
                lease.lost = True
                return
            lease.renewed_at = time.monotonic()

    async def _release(self, lease: Lease) -> None:
        try:
            async with self.db.transaction() as session:
                await session.execute(
                    delete(LockRow).where(LockRow.name == lease.name, LockRow.owner == lease.owner)
                )
        finally:
            event = self._released.pop(lease.name, None)
            if event is not None:
                event.set()
