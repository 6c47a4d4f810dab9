"""The ``gateway`` command, run in-process against a real SQLite file and the sandbox."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.conftest import XSERIES_TOKEN
from tests.support import SandboxHandle, free_port

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    database = tmp_path / "cli.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    monkeypatch.setenv("GATEWAY_SECRET_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "WARNING")
    return database


def gateway(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_commands_refuse_an_unmigrated_database(env: Path) -> None:
    code, out = gateway("merchants", "list")
    assert code != 0
    assert "gateway migrate" in out


def test_migrate_is_idempotent(env: Path) -> None:
    assert gateway("migrate")[0] == 0
    assert gateway("migrate") == (0, "database is at the newest schema\n")
    assert env.exists()


def test_add_show_list_merchant_and_keys(env: Path, xseries: SandboxHandle) -> None:
    gateway("migrate")
    code, out = gateway(
        "merchants", "add", "--name", "Stark Store",
        "--xseries-url", xseries.url, "--xseries-token", XSERIES_TOKEN,
    )  # fmt: skip
    assert code == 0, out
    assert "added merchant Stark Store" in out
    assert XSERIES_TOKEN not in out

    code, out = gateway("merchants", "show", "Stark Store")
    assert code == 0
    assert xseries.url in out and "XSERIES" in out
    assert XSERIES_TOKEN not in out
    assert "Stark Store" in gateway("merchants", "list")[1]

    code, out = gateway("keys", "create", "--merchant", "Stark Store")
    assert code == 0
    key = out.strip().splitlines()[-1]
    assert key.startswith("gwk_") and " " not in key and len(key) > 40

    code, out = gateway("keys", "list", "--merchant", "Stark Store")
    assert "active" in out and key not in out
    code, out = gateway("keys", "revoke", key)
    assert code == 0 and "revoked" in out
    assert "revoked" in gateway("keys", "list", "--merchant", "Stark Store")[1]


def test_tokens_are_stored_encrypted(env: Path, xseries: SandboxHandle) -> None:
    gateway("migrate")
    gateway(
        "merchants", "add", "--name", "Enc", "--xseries-url", xseries.url,
        "--xseries-token", XSERIES_TOKEN,
    )  # fmt: skip
    assert XSERIES_TOKEN.encode() not in env.read_bytes()
    wal = env.with_name(env.name + "-wal")
    assert not wal.exists() or XSERIES_TOKEN.encode() not in wal.read_bytes()


def test_bad_credentials_are_refused_with_a_clear_message(
    env: Path, xseries: SandboxHandle
) -> None:
    gateway("migrate")
    code, out = gateway(
        "merchants", "add", "--name", "Nope", "--xseries-url", xseries.url,
        "--xseries-token", "wrong-token",
    )  # fmt: skip
    assert code == 1
    assert "cannot use these X-Series credentials" in out
    assert "wrong-token" not in out
    assert "Traceback" not in out
    assert "Nope" not in gateway("merchants", "list")[1]


def test_duplicate_merchant_and_unknown_names(env: Path, xseries: SandboxHandle) -> None:
    gateway("migrate")
    args = ["--xseries-url", xseries.url, "--xseries-token", XSERIES_TOKEN]
    assert gateway("merchants", "add", "--name", "Twice", *args)[0] == 0
    code, out = gateway("merchants", "add", "--name", "Twice", *args)
    assert code == 1 and "already exists" in out
    assert gateway("merchants", "show", "Nobody")[0] == 1
    assert gateway("keys", "create", "--merchant", "Nobody")[0] == 1
    code, out = gateway("keys", "revoke", "gwk_not-a-key")
    assert code == 1 and "no such API key" in out


def test_missing_secret_key_is_explained(
    env: Path, xseries: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway("migrate")
    monkeypatch.delenv("GATEWAY_SECRET_KEY")
    code, out = gateway(
        "merchants", "add", "--name", "X", "--xseries-url", xseries.url,
        "--xseries-token", XSERIES_TOKEN,
    )  # fmt: skip
    assert code == 1
    assert "GATEWAY_SECRET_KEY is not set" in out


def test_sandbox_command_serves_demo_data_and_fixtures(tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures.json"
    fixtures.write_text(
        json.dumps({"config": {"retailer_name": "Fixture Shop", "enable_loyalty": 1}})
    )
    for extra, expected in (
        ([], "Stark Industries Store"),
        (["--fixtures", str(fixtures)], "Fixture Shop"),
    ):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "sandbox", "xseries", "--port", str(port),
             "--token", "t0k", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            assert (
                process.stdout.readline().strip()
                == f"X-Series sandbox on http://127.0.0.1:{port}/api"
            )
            url = f"http://127.0.0.1:{port}/api/config"
            assert httpx.get(url).status_code == 401
            config = httpx.get(url, headers={"Authorization": "Bearer t0k"}).json()["config"]
            assert config["retailer_name"] == expected
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_sandbox_command_explains_bad_fixtures(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, out = gateway("sandbox", "xseries", "--fixtures", str(broken))
    assert code == 1
    assert "broken.json" in out and "Traceback" not in out
