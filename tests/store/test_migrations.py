"""The migrations build exactly the schema the models describe, and can be undone."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from gateway.store.db import Database, alembic_config
from gateway.store.models import Base


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    await db.migrate()
    async with db.engine.connect() as connection:
        assert await connection.run_sync(_diff) == []
    await db.dispose()


async def test_migrations_downgrade_to_nothing_and_back(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    await db.migrate()

    def down_and_up(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), "base")
        command.upgrade(alembic_config(connection), "head")

    async with db.engine.begin() as connection:
        await connection.run_sync(down_and_up)
    assert await db.is_current()
    await db.dispose()
