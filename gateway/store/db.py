"""The database handle: one async engine, short transactions, migrations on demand.

SQLite (the embedded default) gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` so that
concurrent writers queue instead of failing with "database is locked" halfway through a
transaction; PostgreSQL needs none of that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway import telemetry

MIGRATIONS = Path(__file__).parent / "migrations"
READ_ONLY = "gateway_read_only"


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine: AsyncEngine = _create_engine(url, echo=echo)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._readers = async_sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error.
        Its time, waiting for the write lock included, is the request's ``db`` time
        (``gateway/telemetry.py``)."""
        record = telemetry.db_begin()
        try:
            async with self._sessions() as session, session.begin():
                yield session
        finally:
            telemetry.db_end(record)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A transaction that only reads: on SQLite it does not take the write lock, so
        reads never queue behind writes or each other (WAL gives them a snapshot)."""
        record = telemetry.db_begin()
        try:
            async with self._readers() as session, session.begin():
                yield session
        finally:
            telemetry.db_end(record)

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        async with self.engine.begin() as connection:
            await connection.run_sync(_upgrade)

    async def is_current(self) -> bool:
        """Whether the schema is at the newest migration (commands refuse to run otherwise)."""
        current, head = await self.revisions()
        return current == head

    async def revisions(self) -> tuple[str | None, str | None]:
        """The schema's migration and the newest one this code knows (None: none applied)."""
        async with self.engine.connect() as connection:
            current = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
        return current, ScriptDirectory.from_config(alembic_config()).get_current_head()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _create_engine(url: str, *, echo: bool) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, echo=echo, pool_pre_ping=True)
    engine = create_async_engine(url, echo=echo, async_creator=_sqlite_connector(url))

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that later writes
        # can fail with SQLITE_BUSY without waiting, which would abort a redemption midway.
        # Readers (Database.read) begin deferred and never take it.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _sqlite_connector(url: str) -> Any:
    """Connect as SQLAlchemy would, but wait for aiosqlite's thread when connecting fails.

    On a failed connect (a missing directory, no permission) aiosqlite queues its worker
    thread's stop and returns at once; the thread then reports back to the event loop, which
    may be closed by then: "Event loop is closed" raised in a thread, after the caller has
    long handled the failure. Waiting for the thread here keeps the failure where it belongs.
    """
    args, kwargs = _create_sqlite_args(url)

    async def connect() -> aiosqlite.Connection:
        connection = aiosqlite.connect(*args, **kwargs)
        # aiosqlite's worker thread must never keep the process alive (as SQLAlchemy sets).
        connection._thread.daemon = True
        try:
            return await connection
        except BaseException:
            await asyncio.to_thread(connection._thread.join, 5)
            raise

    return connect


def _create_sqlite_args(url: str) -> tuple[list[Any], dict[str, Any]]:
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    return list(args), {**kwargs, "timeout": 30}
