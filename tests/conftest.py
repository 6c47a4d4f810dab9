"""Shared fixtures: sandboxes as real HTTP servers, the gateway's runtime on each backend.

Backends: every test that takes ``runtime`` runs on SQLite with the in-memory cache, and
also on PostgreSQL with Redis when ``GATEWAY_TEST_POSTGRES_URL`` and
``GATEWAY_TEST_REDIS_URL`` are set (``.ci/run`` sets them; in CI they are required).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.pos.http import HttpLayer, HttpPolicy
from gateway.pos.xseries import XSeriesClient
from gateway.runtime import Runtime, utc_now
from gateway.sandbox import kounta as kounta_sandbox
from gateway.sandbox import xseries as xseries_sandbox
from gateway.settings import Environment, Settings
from gateway.store.db import Database
from gateway.store.models import Base
from tests.support import ManualClock, SandboxHandle, ServerThread

# The gateway's own fixtures (a gateway on each backend, its merchants, an API client), for
# every folder: the API's tests and the use cases' alike.
pytest_plugins = ["tests.gateways"]

XSERIES_TOKEN = "test-xseries-token"
KOUNTA_STATIC_TOKEN = "test-kounta-static-token"
POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL")

# A gateway run as a process by a test: a crashed one's leases run out soon.
PROCESS_LEASE_S = 1.0

# Fast, still bounded: retries and waits small enough for a quick suite.
TEST_POLICY = HttpPolicy(
    connect_timeout_s=2.0,
    read_timeout_s=2.0,
    max_retries=2,
    backoff_base_s=0.01,
    backoff_max_s=0.05,
    max_retry_after_s=5.0,
    breaker_failures=50,
    breaker_reset_s=1.0,
)


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("CI") and not (POSTGRES_URL and REDIS_URL):
        raise pytest.UsageError(
            "CI must test PostgreSQL and Redis: set GATEWAY_TEST_POSTGRES_URL and "
            "GATEWAY_TEST_REDIS_URL (.ci/run does)"
        )


# --------------------------------------------------------------------------- sandboxes


@pytest.fixture(scope="session")
def xseries_server() -> Iterator[ServerThread]:
    server = ServerThread(xseries_sandbox.create_app(token=XSERIES_TOKEN)).start()
    yield server
    server.stop()


@pytest.fixture
def xseries(xseries_server: ServerThread) -> Iterator[SandboxHandle]:
    """The X-Series sandbox, reset to its demo data for this test."""
    handle = SandboxHandle(xseries_server.url, XSERIES_TOKEN)
    handle.reset()
    yield handle
    handle.close()


@pytest.fixture(scope="session")
def kounta_server() -> Iterator[ServerThread]:
    defaults = Settings()
    app = kounta_sandbox.create_app(
        token=KOUNTA_STATIC_TOKEN,
        client_id=defaults.kounta_client_id,
        client_secret=defaults.kounta_client_secret.get_secret_value(),
    )
    server = ServerThread(app).start()
    yield server
    server.stop()


@pytest.fixture
def kounta(kounta_server: ServerThread) -> Iterator[SandboxHandle]:
    """The Kounta sandbox, reset to its demo data for this test."""
    handle = SandboxHandle(kounta_server.url, KOUNTA_STATIC_TOKEN)
    handle.reset()
    yield handle
    handle.close()


@pytest.fixture
async def http_layer() -> AsyncIterator[HttpLayer]:
    layer = HttpLayer(policy=TEST_POLICY)
    yield layer
    await layer.aclose()


@pytest.fixture
def xseries_client(http_layer: HttpLayer, xseries: SandboxHandle) -> XSeriesClient:
    from gateway.pos.http import BearerToken

    return XSeriesClient.connect(http_layer, xseries.url, BearerToken(XSERIES_TOKEN))


# --------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class Backend:
    name: str
    database: str
    cache: str


def _backends() -> list[str]:
    names = ["sqlite-memory"]
    if POSTGRES_URL and REDIS_URL:
        names.append("postgres-redis")
    return names


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """A database of our own on the CI server, migrated once, dropped at the end."""
    if not POSTGRES_URL:
        yield None
        return
    name = f"gateway_test_{secrets.token_hex(4)}"
    admin = POSTGRES_URL

    async def run(sql: str) -> None:
        engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(sql))
        await engine.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    url = admin.rsplit("/", 1)[0] + f"/{name}"

    async def migrate() -> None:
        from gateway.store.db import Database

        db = Database(url)
        await db.migrate()
        await db.dispose()

    asyncio.run(migrate())
    yield url
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest, postgres_database: str | None) -> Backend:
    if request.param == "postgres-redis":
        assert postgres_database and REDIS_URL
        return Backend("postgres-redis", postgres_database, REDIS_URL)
    return Backend("sqlite-memory", "", "memory://")


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    database = backend.database or f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    return Settings(
        environment=Environment.TEST,
        database_url=database,
        cache_url=backend.cache,
        secret_key=secrets.token_urlsafe(32),
        kounta_addon_token="test-addon-token",
        log_json=False,
        log_level="WARNING",
        upstream_read_timeout_s=TEST_POLICY.read_timeout_s,
        upstream_max_retries=TEST_POLICY.max_retries,
        upstream_backoff_base_s=TEST_POLICY.backoff_base_s,
        upstream_backoff_max_s=TEST_POLICY.backoff_max_s,
        upstream_max_retry_after_s=TEST_POLICY.max_retry_after_s,
        upstream_breaker_failures=TEST_POLICY.breaker_failures,
        upstream_breaker_reset_s=TEST_POLICY.breaker_reset_s,
        # Read a lost write back at once; tests of the window itself move a clock instead.
        upstream_settle_s=0,
        # A test runs the worker when it means to (recover_once), so what it sees is what
        # its own steps did; the loop in `serve` is tested on its own.
        worker_in_process=False,
    )


async def fresh_runtime(
    settings: Settings,
    clock: ManualClock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Runtime:
    """The gateway's resources on a clean, migrated store and an empty cache; ``transport``
    stands in for the network (an answer no sandbox gives)."""
    copied = await _from_template(settings.database_url)
    runtime = Runtime(settings, clock=clock or utc_now, transport=transport)
    if runtime.db.dialect == "postgresql":
        async with runtime.db.engine.begin() as connection:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            await connection.execute(text(f"TRUNCATE {tables} CASCADE"))
    elif not copied:
        await runtime.db.migrate()
    await runtime.cache.clear()
    return runtime


SQLITE = "sqlite+aiosqlite:///"
_SQLITE_TEMPLATE: list[Path] = []  # the session's migrated SQLite file, made on first use


def _new_sqlite_file(url: str) -> Path | None:
    target = Path(url.removeprefix(SQLITE))
    return target if url.startswith(SQLITE) and not target.exists() else None


async def _from_template(url: str) -> bool:
    """A new SQLite file starts as a copy of one migrated once per session (migrating each
    test's file took most of a small test's time); False when ``url`` is not such a file."""
    target = _new_sqlite_file(url)
    if target is None:
        return False
    if not _SQLITE_TEMPLATE:
        template = Path(tempfile.mkdtemp(prefix="gateway-template-")) / "migrated.db"
        database = Database(f"{SQLITE}{template}")
        try:
            await database.migrate()
        finally:
            await database.dispose()  # the last connection closed: the WAL is folded in
        _SQLITE_TEMPLATE.append(template)
    shutil.copyfile(_SQLITE_TEMPLATE[0], target)
    return True


def pytest_sessionfinish(session: pytest.Session) -> None:
    for template in _SQLITE_TEMPLATE:
        shutil.rmtree(template.parent, ignore_errors=True)


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await fresh_runtime(settings)
    yield runtime
    await runtime.aclose()


@pytest.fixture
def process_env(settings: Settings) -> dict[str, str]:
    """What a ``gateway`` process needs to share the test's store, key and sandboxes."""
    assert settings.secret_key is not None and settings.kounta_addon_token is not None
    return {
        "GATEWAY_ENVIRONMENT": "test",
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_CACHE_URL": settings.cache_url,
        "GATEWAY_SECRET_KEY": settings.secret_key.get_secret_value(),
        "GATEWAY_KOUNTA_ADDON_TOKEN": settings.kounta_addon_token.get_secret_value(),
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_LOG_JSON": "false",
        "GATEWAY_UPSTREAM_SETTLE_S": "0",
        "GATEWAY_LEASE_S": str(PROCESS_LEASE_S),
        "GATEWAY_WORKER_IN_PROCESS": "false",
        "GATEWAY_UPSTREAM_READ_TIMEOUT_S": str(TEST_POLICY.read_timeout_s),
        "GATEWAY_UPSTREAM_MAX_RETRIES": str(TEST_POLICY.max_retries),
        "GATEWAY_UPSTREAM_BACKOFF_BASE_S": str(TEST_POLICY.backoff_base_s),
        "GATEWAY_UPSTREAM_BACKOFF_MAX_S": str(TEST_POLICY.backoff_max_s),
        "GATEWAY_UPSTREAM_BREAKER_FAILURES": str(TEST_POLICY.breaker_failures),
    }
