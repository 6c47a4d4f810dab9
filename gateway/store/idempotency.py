"""Idempotency records: (merchant, key) → what was asked, how far it got, what it answered.

Only the holder of the key's lease (``store/leases.py``) writes a record's progress: each
such write is fenced by the lease, so an attempt that stalled past its lease cannot
overwrite the work of the one that took over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gateway.domain.errors import IdempotencyKeyReused
from gateway.store.db import Database
from gateway.store.leases import Lease, Leases
from gateway.store.models import IdempotencyRow


class Status(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"  # an attempt is at work, or died at work (its lease ran out)
    COMPLETED = "COMPLETED"
    # The last attempt ended without an answer (upstream down, a write unsettled).
    RETRYABLE = "RETRYABLE"


@dataclass(frozen=True)
class KeyRecord:
    merchant_id: str
    key: str
    operation: str
    fingerprint: str
    status: Status
    checkpoint: dict[str, Any] | None
    result_json: str | None
    updated_at: datetime

    @property
    def completed(self) -> bool:
        return self.status is Status.COMPLETED

    def check(self, operation: str, fingerprint: str) -> None:
        """The same key must mean the same request."""
        if self.operation != operation or self.fingerprint != fingerprint:
            raise IdempotencyKeyReused


def _record(row: IdempotencyRow) -> KeyRecord:
    return KeyRecord(
        merchant_id=row.merchant_id,
        key=row.key,
        operation=row.operation,
        fingerprint=row.fingerprint,
        status=Status(row.status),
        checkpoint=json.loads(row.checkpoint_json) if row.checkpoint_json else None,
        result_json=row.result_json,
        updated_at=row.updated_at,
    )


class IdempotencyStore:
    def __init__(self, db: Database, leases: Leases) -> None:
        self.db = db
        self.leases = leases

    async def get(self, merchant_id: str, key: str) -> KeyRecord | None:
        async with self.db.read() as session:
            row = await session.get(IdempotencyRow, (merchant_id, key))
            return _record(row) if row else None

    async def begin(
        self, lease: Lease, merchant_id: str, key: str, operation: str, fingerprint: str
    ) -> KeyRecord:
        """The record, created IN_PROGRESS if new, else marked IN_PROGRESS again (unless
        completed); the caller holds the key's lease."""
        now = datetime.now(UTC)
        try:
            async with self.db.transaction() as session:
                row = await session.get(IdempotencyRow, (merchant_id, key))
                if row is None:
                    row = IdempotencyRow(
                        merchant_id=merchant_id,
                        key=key,
                        operation=operation,
                        fingerprint=fingerprint,
                        status=Status.IN_PROGRESS.value,
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(row)
                    await session.flush()
                    return _record(row)
                record = _record(row)
                record.check(operation, fingerprint)
                if not record.completed:
                    row.status = Status.IN_PROGRESS.value
                    row.updated_at = now
                    await session.flush()
                return _record(row)
        except IntegrityError:  # inserted meanwhile by a holder of a lost lease: look again
            found = await self.get(merchant_id, key)
            assert found is not None
            found.check(operation, fingerprint)
            return found

    async def save_checkpoint(
        self, lease: Lease, merchant_id: str, key: str, checkpoint: dict[str, Any]
    ) -> bool:
        return await self._update(
            lease, merchant_id, key, checkpoint_json=json.dumps(checkpoint, sort_keys=True)
        )

    async def complete(self, lease: Lease, merchant_id: str, key: str, result: str) -> bool:
        return await self._update(
            lease, merchant_id, key, status=Status.COMPLETED.value, result_json=result
        )

    async def release(self, lease: Lease, merchant_id: str, key: str) -> bool:
        """Give up without an answer; the next attempt resumes from the checkpoint."""
        return await self._update(lease, merchant_id, key, status=Status.RETRYABLE.value)

    async def reopen_refused(self, merchant_id: str, operation: str, codes: frozenset[str]) -> int:
        """Answers of ``operation`` that were refusals with one of ``codes`` become
        RETRYABLE again, for the worker: work no caller waits on, refused by a connection
        that has since been repaired (services/connect.py), is owed, not done."""
        reopened = 0
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(IdempotencyRow).where(
                    IdempotencyRow.merchant_id == merchant_id,
                    IdempotencyRow.operation == operation,
                    IdempotencyRow.status == Status.COMPLETED.value,
                    IdempotencyRow.result_json.startswith('{"error"'),
                )
            )
            for row in rows:
                error = json.loads(row.result_json or "{}").get("error") or {}
                if error.get("code") in codes:
                    row.status, row.result_json = Status.RETRYABLE.value, None
                    row.updated_at = datetime(2000, 1, 1, tzinfo=UTC)  # due at once
                    reopened += 1
        return reopened

    async def unfinished(
        self,
        *,
        in_progress_before: datetime,
        retry_operations: tuple[str, ...] = (),
        retryable_before: datetime | None = None,
        limit: int = 100,
    ) -> list[KeyRecord]:
        """What the worker must look at: attempts that died at work (IN_PROGRESS since
        before ``in_progress_before``, i.e. longer than a lease), and attempts of the
        ``retry_operations`` (work no caller will retry) that gave up a while ago."""
        died = (IdempotencyRow.status == Status.IN_PROGRESS.value) & (
            IdempotencyRow.updated_at < in_progress_before
        )
        condition = died
        if retry_operations and retryable_before is not None:
            condition = died | (
                (IdempotencyRow.status == Status.RETRYABLE.value)
                & IdempotencyRow.operation.in_(retry_operations)
                & (IdempotencyRow.updated_at < retryable_before)
            )
        async with self.db.read() as session:
            rows = await session.scalars(
                select(IdempotencyRow)
                .where(condition)
                .order_by(IdempotencyRow.updated_at)
                .limit(limit)
            )
            return [_record(row) for row in rows]

    async def _update(self, lease: Lease, merchant_id: str, key: str, **values: Any) -> bool:
        async with self.db.transaction() as session:
            result = await session.execute(
                update(IdempotencyRow)
                .where(
                    IdempotencyRow.merchant_id == merchant_id,
                    IdempotencyRow.key == key,
                    self.leases.fence(lease),
                )
                .values(updated_at=datetime.now(UTC), **values)
            )
        return bool(getattr(result, "rowcount", 0))
