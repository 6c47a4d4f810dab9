"""Idempotency records: (merchant, key) → what was asked, how far it got, what it answered.

A record is claimed by one attempt at a time through a lease, like a lock, so a second
process sees the first's work in progress and waits for its answer instead of redoing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gateway.domain.errors import ErrorCode, GatewayError
from gateway.store.db import Database
from gateway.store.models import IdempotencyRow


class Status(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    # The last attempt ended without an answer (upstream down, crash): the next one resumes.
    RETRYABLE = "RETRYABLE"


class ClaimOutcome(StrEnum):
    EXECUTE = "EXECUTE"
    DONE = "DONE"
    BUSY = "BUSY"


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    checkpoint: dict[str, Any] | None = None
    result: str | None = None


class KeyReused(GatewayError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED

    def __init__(self) -> None:
        super().__init__(
            "this idempotency key was already used for a different request; use a new key",
            field="idempotencyKey",
        )


class IdempotencyStore:
    def __init__(self, db: Database, *, lease_s: float = 30.0) -> None:
        self.db = db
        self.lease_s = lease_s

    async def claim(
        self, merchant_id: str, key: str, operation: str, fingerprint: str, owner: str
    ) -> Claim:
        now = datetime.now(UTC)
        lease_end = now + timedelta(seconds=self.lease_s)
        try:
            async with self.db.transaction() as session:
                query = select(IdempotencyRow).where(
                    IdempotencyRow.merchant_id == merchant_id, IdempotencyRow.key == key
                )
                if self.db.dialect == "postgresql":
                    query = query.with_for_update()
                row = await session.scalar(query)
                if row is None:
                    session.add(
                        IdempotencyRow(
                            merchant_id=merchant_id,
                            key=key,
                            operation=operation,
                            fingerprint=fingerprint,
                            status=Status.IN_PROGRESS.value,
                            lease_owner=owner,
                            lease_expires_at=lease_end,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    return Claim(ClaimOutcome.EXECUTE)
                if row.operation != operation or row.fingerprint != fingerprint:
                    raise KeyReused
                if row.status == Status.COMPLETED:
                    return Claim(ClaimOutcome.DONE, result=row.result_json)
                lease_over = row.lease_expires_at is None or row.lease_expires_at < now
                if row.status == Status.IN_PROGRESS and not lease_over:
                    return Claim(ClaimOutcome.BUSY)
                row.status = Status.IN_PROGRESS.value
                row.lease_owner = owner
                row.lease_expires_at = lease_end
                row.updated_at = now
                checkpoint = json.loads(row.checkpoint_json) if row.checkpoint_json else None
                return Claim(ClaimOutcome.EXECUTE, checkpoint=checkpoint)
        except IntegrityError:
            # Another attempt inserted the record first: report busy; the caller looks again.
            return Claim(ClaimOutcome.BUSY)

    async def peek(self, merchant_id: str, key: str) -> IdempotencyRow | None:
        """The record as it stands, for the worker deciding what to do about it."""
        async with self.db.read() as session:
            return await session.get(IdempotencyRow, (merchant_id, key))

    async def renew(self, merchant_id: str, key: str, owner: str) -> bool:
        return await self._update(
            merchant_id,
            key,
            owner,
            lease_expires_at=datetime.now(UTC) + timedelta(seconds=self.lease_s),
        )

    async def save_checkpoint(
        self, merchant_id: str, key: str, owner: str, checkpoint: dict[str, Any]
    ) -> bool:
        return await self._update(
            merchant_id, key, owner, checkpoint_json=json.dumps(checkpoint, sort_keys=True)
        )

    async def complete(self, merchant_id: str, key: str, owner: str, result: str) -> bool:
        return await self._update(
            merchant_id,
            key,
            owner,
            status=Status.COMPLETED.value,
            result_json=result,
            lease_owner=None,
            lease_expires_at=None,
        )

    async def release(self, merchant_id: str, key: str, owner: str) -> bool:
        """Give up without an answer; the next attempt resumes from the checkpoint."""
        return await self._update(
            merchant_id,
            key,
            owner,
            status=Status.RETRYABLE.value,
            lease_owner=None,
            lease_expires_at=None,
        )

    async def _update(self, merchant_id: str, key: str, owner: str, **values: Any) -> bool:
        async with self.db.transaction() as session:
            result = await session.execute(
                update(IdempotencyRow)
                .where(
                    IdempotencyRow.merchant_id == merchant_id,
                    IdempotencyRow.key == key,
                    IdempotencyRow.lease_owner == owner,
                )
                .values(updated_at=datetime.now(UTC), **values)
            )
        return bool(getattr(result, "rowcount", 0))
