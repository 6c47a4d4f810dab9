"""``gateway doctor`` on the demo's own setup (its seed, its sandboxes' tokens), run through
the CLI in-process: it passes there, and fails naming the fix when a POS token is revoked,
a permission is missing, a webhook is missing, the worker has stopped or the database is
not migrated."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, update
from typer.testing import CliRunner

from gateway import demo
from gateway.cli import app
from gateway.runtime import Runtime
from gateway.sandbox import kounta as kounta_sandbox
from gateway.sandbox import xseries as xseries_sandbox
from gateway.services.context import Services
from gateway.services.recovery import recover_once
from gateway.settings import Settings
from gateway.store import merchants as merchant_store
from gateway.store.models import IdempotencyRow, WorkerPassRow
from tests.support import SandboxHandle, ServerThread

PUBLIC_URL = "http://127.0.0.1:9"  # the POS never deliver here in these tests
ADDON_TOKEN = "doctor-addon-token"
DEMO = demo.DEMO_MERCHANT


@pytest.fixture(scope="module")
def demo_xseries_server() -> Iterator[ServerThread]:
    """The X-Series sandbox as ``gateway demo`` starts it (its static token)."""
    server = ServerThread(xseries_sandbox.create_app(token=demo.XSERIES_TOKEN)).start()
    yield server
    server.stop()


@pytest.fixture
def xseries(demo_xseries_server: ServerThread) -> Iterator[SandboxHandle]:
    handle = SandboxHandle(demo_xseries_server.url, demo.XSERIES_TOKEN)
    handle.reset()
    yield handle
    handle.close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'doctor.db'}",
        "GATEWAY_SECRET_KEY": secrets.token_urlsafe(32),
        "GATEWAY_KOUNTA_ADDON_TOKEN": ADDON_TOKEN,
        "GATEWAY_PUBLIC_URL": PUBLIC_URL,
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_LOG_JSON": "false",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def seeded(env: dict[str, str], xseries: SandboxHandle, kounta: SandboxHandle) -> None:
    """What ``gateway demo`` builds (its seed: the merchant on both POS, rewards, a key, an
    invite), with one worker pass behind it, as the demo's in-process worker makes. (The
    command runs its own event loop, so these tests are synchronous.)"""

    async def build(runtime: Runtime) -> None:
        await runtime.db.migrate()
        services = Services(runtime)
        await demo.seed(services, xseries.url, kounta.url)
        await recover_once(services)

    on_runtime(build)


def on_runtime(work: Callable[[Runtime], Awaitable[None]]) -> None:
    async def run() -> None:
        runtime = Runtime(Settings())
        try:
            await work(runtime)
        finally:
            await runtime.aclose()

    asyncio.run(run())


def doctor(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["doctor", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def rows(out: str, subject: str, check: str) -> list[str]:
    """The table's lines for one check (a row is one line when the output is piped)."""
    return [line for line in out.splitlines() if subject in line and f" {check} " in line]


def row(out: str, subject: str, check: str) -> str:
    found = rows(out, subject, check)
    assert len(found) == 1, out
    return found[0]


def test_doctor_passes_on_the_demo_and_shows_no_secret(seeded: None, env: dict[str, str]) -> None:
    code, out, err = doctor()
    assert code == 0, out
    assert "FAIL" not in out
    for subject, check in [
        ("settings", "secret key"),
        ("settings", "public URL"),
        ("settings", "Kounta add-on token"),
        ("database", "reachable"),
        ("database", "migrated"),
        ("cache", "reachable"),
        ("worker", "last pass"),
        ("worker", "backlog"),
        (f"{DEMO} / X-Series", "authentication"),
        (f"{DEMO} / X-Series", "loyalty enabled"),
        (f"{DEMO} / X-Series", "loyalty write"),
        (f"{DEMO} / X-Series", "Loyalty payment type"),
        (f"{DEMO} / X-Series", "webhooks"),
        (f"{DEMO} / X-Series", "rate budget"),
        (f"{DEMO} / X-Series", "connection"),
        (f"{DEMO} / Kounta", "authentication"),
        (f"{DEMO} / Kounta", "payment method"),
        (f"{DEMO} / Kounta", "webhooks"),
        (f"{DEMO} / Kounta", "connection"),
    ]:
        assert " ok " in row(out, subject, check), (subject, check, out)
    # The rate budget as X-Series' own headers told it during the checks.
    assert " left until " in row(out, f"{DEMO} / X-Series", "rate budget")
    assert f"checking merchant 1/1: {DEMO}" in err  # progress, on stderr
    kounta_tokens = json.loads(kounta_sandbox.DEMO_FIXTURES.read_text())["tokens"][0]
    for secret in (env["GATEWAY_SECRET_KEY"], ADDON_TOKEN, demo.XSERIES_TOKEN,
                   kounta_tokens["access_token"], kounta_tokens["refresh_token"]):  # fmt: skip
        assert secret not in out and secret not in err


def test_a_revoked_pos_token_fails_naming_the_reconnect(
    seeded: None, kounta: SandboxHandle
) -> None:
    """Kounta no longer knows the shop's tokens (revoked at the POS): the access token is
    refused and so is its refresh; the connection must be renewed by the merchant."""
    fixtures = json.loads(kounta_sandbox.DEMO_FIXTURES.read_text())
    del fixtures["tokens"]
    kounta.reset(fixtures)
    code, out, _ = doctor()
    assert code == 1
    auth = row(out, f"{DEMO} / Kounta", "authentication")
    assert "FAIL" in auth
    assert f'`gateway merchants invite --name "{DEMO}"`' in auth
    connection = row(out, f"{DEMO} / Kounta", "connection")
    assert "FAIL" in connection and "RECONNECT_NEEDED" in connection
    assert " ok " in row(out, f"{DEMO} / X-Series", "connection")  # the other POS is fine


def test_a_token_without_the_loyalty_permission_fails_naming_the_reconnect(
    seeded: None, xseries: SandboxHandle
) -> None:
    """Points live at X-Series, so the token must be able to adjust balances (the check
    ``merchants add`` warns with)."""
    xseries.scopes("retailer:read customers:read customers:write products:read "
                   "payment_types:read sales:read sales:write webhooks")  # fmt: skip
    code, out, _ = doctor("--merchant", DEMO)
    assert code == 1
    line = row(out, f"{DEMO} / X-Series", "loyalty write")
    assert "FAIL" in line and "loyalty.transaction.write" in line
    assert "gateway merchants invite" in line


def test_a_missing_webhook_fails_naming_the_fix_which_registers_it(
    seeded: None, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    hooks = xseries.get("/api/webhooks")
    sale_hook = next(h for h in hooks if h["type"] == "sale.update")
    answer = httpx.delete(f"{xseries.url}/api/webhooks/{sale_hook['id']}",
                          headers={"Authorization": f"Bearer {xseries.token}"})  # fmt: skip
    assert answer.status_code < 300
    code, out, _ = doctor()
    assert code == 1
    line = row(out, f"{DEMO} / X-Series", "webhooks")
    assert "FAIL" in line and "sale.update" in line
    assert f'`gateway doctor --merchant "{DEMO}" --fix`' in line
    assert " ok " in row(out, f"{DEMO} / Kounta", "webhooks")

    code, out, _ = doctor("--merchant", DEMO, "--fix")
    assert code == 0, out
    assert "registered now" in row(out, f"{DEMO} / X-Series", "webhooks")
    again = {(h["type"], h["url"]) for h in xseries.get("/api/webhooks")}
    assert ("sale.update", sale_hook["url"]) in again
    assert doctor()[0] == 0


def test_an_unmigrated_database_fails_naming_migrate(env: dict[str, str]) -> None:
    code, out, _ = doctor()
    assert code == 1
    line = row(out, "database", "migrated")
    assert "FAIL" in line and "run `gateway migrate`" in line
    assert " ok " in row(out, "database", "reachable")
    assert not rows(out, "worker", "last pass")  # nothing read from a schema that is not there


def test_a_worker_that_stopped_fails_and_none_yet_warns(seeded: None, env: dict[str, str]) -> None:
    async def age(runtime: Runtime) -> None:
        async with runtime.db.transaction() as session:
            await session.execute(
                update(WorkerPassRow).values(
                    finished_at=datetime.now(UTC) - timedelta(hours=2), interval_s=10.0
                )
            )

    on_runtime(age)
    code, out, _ = doctor("--merchant", DEMO)
    assert code == 1
    line = row(out, "worker", "last pass")
    assert "FAIL" in line and "2 h ago" in line and "`gateway worker`" in line


def test_production_settings_without_https_or_a_real_key_fail(
    seeded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "production")
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "short")
    code, out, _ = doctor("--merchant", DEMO)
    assert code == 1
    assert "FAIL" in row(out, "settings", "secret key")
    assert "not https" in row(out, "settings", "public URL")
    assert "FAIL" in row(out, "settings", "OAuth apps")


def test_an_unknown_merchant_is_an_error(env: dict[str, str]) -> None:
    CliRunner().invoke(app, ["migrate"])
    result = CliRunner().invoke(app, ["doctor", "--merchant", "Nobody"])
    assert result.exit_code == 1
    assert "no merchant named 'Nobody'" in result.stderr


def test_old_unsettled_work_and_no_worker_pass_are_warnings_exit_0(seeded: None) -> None:
    """An operation whose attempt died an hour ago is the worker's backlog; with no pass on
    record the doctor says to start the worker. Both only warn: nothing fails yet."""

    async def stall(runtime: Runtime) -> None:
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        async with runtime.db.transaction() as session:
            merchant = await merchant_store.get_merchant_by_name(session, DEMO)
            assert merchant is not None
            session.add(IdempotencyRow(
                merchant_id=merchant.id, key="till-7-0042", operation="pay_with_loyalty",
                fingerprint="f" * 64, status="IN_PROGRESS", created_at=an_hour_ago,
                updated_at=an_hour_ago,
            ))  # fmt: skip
            await session.execute(delete(WorkerPassRow))

    on_runtime(stall)
    code, out, _ = doctor("--merchant", DEMO)
    assert code == 0, out
    backlog = row(out, "worker", "backlog")
    assert "warn" in backlog and "1 operations in progress or to retry" in backlog
    assert "`gateway worker --once`" in backlog
    last = row(out, "worker", "last pass")
    assert "warn" in last and "no pass recorded" in last and "`gateway worker`" in last


def test_loyalty_off_and_a_missing_payment_method_fail_naming_the_fix(
    seeded: None, xseries: SandboxHandle, kounta: SandboxHandle
) -> None:
    """The store turned loyalty off (its Loyalty payment type goes with it), and the Kounta
    payment method rewards are paid with was deleted."""
    store = json.loads(xseries_sandbox.DEMO_FIXTURES.read_text())
    store["config"]["enable_loyalty"] = False
    store["payment_types"] = [t for t in store["payment_types"] if t["payment_type_id"] != 106]
    xseries.reset(store)
    company = json.loads(kounta_sandbox.DEMO_FIXTURES.read_text())
    company["payment_methods"] = [m for m in company["payment_methods"] if m["id"] != 12]
    kounta.reset(company)
    code, out, _ = doctor("--merchant", DEMO)
    assert code == 1
    enabled = row(out, f"{DEMO} / X-Series", "loyalty enabled")
    assert "FAIL" in enabled and "turn loyalty on in the X-Series back office" in enabled
    payment_type = row(out, f"{DEMO} / X-Series", "Loyalty payment type")
    assert "FAIL" in payment_type and "turn loyalty on" in payment_type
    method = row(out, f"{DEMO} / Kounta", "payment method")
    assert "FAIL" in method and "(12) is not in the company" in method
    assert f'`gateway merchants invite --name "{DEMO}"`' in method


def test_a_nearly_spent_rate_window_warns_with_when_it_resets(
    seeded: None, xseries: SandboxHandle
) -> None:
    """X-Series says (X-RateLimit headers) the store allows 6 calls a window: after the
    doctor's own four, what is left is within the callers' reserve (GATEWAY_UPSTREAM_BUDGET
    _RESERVE, 0.2: 2 of 6), so background work waits."""
    xseries.faults(rate_limit={"limit": 6, "window_s": 300})
    code, out, _ = doctor("--merchant", DEMO)
    assert code == 0, out  # a warning
    line = row(out, f"{DEMO} / X-Series", "rate budget")
    assert "warn" in line and "2 of 6 left" in line and "it resets in" in line
