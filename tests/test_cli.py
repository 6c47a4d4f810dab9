"""The ``gateway`` command, run in-process against a real SQLite file and the sandbox."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.services.subscriptions import KOUNTA_TOPICS
from tests.conftest import XSERIES_TOKEN
from tests.demo_ids import JOHNNY, TONY
from tests.support import SandboxHandle, free_port, sandbox_process

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
    again = runner.invoke(app, ["migrate"])
    assert (again.exit_code, again.stdout) == (0, "database is at the newest schema\n")
    assert "migrating the database" in again.stderr  # progress, on stderr only
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


NO_LOYALTY_WRITE = (
    "retailer:read customers:read customers:write products:read payment_types:read "
    "sales:read sales:write webhooks"
)
ADJUSTMENTS = "POST /api/2026-07/loyalty/adjustments/bulk"


def test_adding_a_merchant_warns_when_its_xseries_token_cannot_write_loyalty(
    env: Path, xseries: SandboxHandle
) -> None:
    gateway("migrate")
    xseries.scopes(NO_LOYALTY_WRITE)
    xseries.clear_stats()
    result = runner.invoke(app, [
        "merchants", "add", "--name", "No Loyalty", "--xseries-url", xseries.url,
        "--xseries-token", XSERIES_TOKEN,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "added merchant No Loyalty" in result.stdout and "warning" not in result.stdout
    assert result.stderr.startswith(
        "warning: the X-Series token cannot write loyalty (scope loyalty.transaction.write): "
        "reconnect the store with that permission"
    )
    assert "No Loyalty" in gateway("merchants", "list")[1]  # added all the same
    # Asked once, refused before anything was read: no points moved to find out.
    assert xseries.stats()["responses"][f"{ADJUSTMENTS} 403"] == 1
    assert xseries.count(ADJUSTMENTS) == 1
    customers = xseries.get("/api/customers")["customers"]
    assert [c["loyalty_balance"] for c in customers] == [
        "50.00000", "12.00000", "0.00000", "120.00000"
    ]  # fmt: skip


def test_a_token_that_can_write_loyalty_adds_the_merchant_without_a_warning(
    env: Path, xseries: SandboxHandle
) -> None:
    gateway("migrate")
    xseries.clear_stats()
    result = runner.invoke(app, [
        "merchants", "add", "--name", "Loyal", "--xseries-url", xseries.url,
        "--xseries-token", XSERIES_TOKEN,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    # The probe: an empty adjustments list, refused by validation, so nothing was applied.
    assert xseries.stats()["responses"][f"{ADJUSTMENTS} 400"] == 1


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
        with sandbox_process("xseries", port, "--token", "t0k", *extra) as announced:
            assert announced == f"X-Series sandbox on http://127.0.0.1:{port}/api"
            url = f"http://127.0.0.1:{port}/api/config"
            assert httpx.get(url).status_code == 401
            config = httpx.get(url, headers={"Authorization": "Bearer t0k"}).json()["config"]
            assert config["retailer_name"] == expected


def test_sandbox_command_explains_bad_fixtures(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code, out = gateway("sandbox", "xseries", "--fixtures", str(broken))
    assert code == 1
    assert "broken.json" in out and "Traceback" not in out


def test_sandbox_command_restricts_its_tokens_to_the_scopes_given() -> None:
    port = free_port()
    scopes = "retailer:read customers:read"
    with sandbox_process("xseries", port, "--token", "t0k", "--scopes", scopes) as announced:
        assert announced.startswith("X-Series sandbox on")
        headers = {"Authorization": "Bearer t0k"}
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/config", headers=headers).status_code == 200
        assert httpx.get(f"{base}/api/customers", headers=headers).status_code == 200
        sales = httpx.get(f"{base}/api/register_sales", headers=headers)
        assert (sales.status_code, sales.json()) == (403, {"error": "permission denied"})
        assert httpx.get(f"{base}/api/config").status_code == 401


def test_sandbox_command_explains_unknown_scopes() -> None:
    code, out = gateway("sandbox", "xseries", "--scopes", "customers:read loyalty:write")
    assert code == 1
    assert "--scopes: unknown scopes: loyalty:write" in out and "Traceback" not in out


def test_kounta_merchant_rewards_and_the_urls_to_paste(
    env: Path, xseries: SandboxHandle, kounta: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_KOUNTA_ADDON_TOKEN", "addon-secret")
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://gw.example")
    gateway("migrate")
    code, out = gateway(
        "merchants", "add", "--name", "Café", "--kounta-url", kounta.url,
        "--kounta-company-id", "5678", "--kounta-access-token", "demo-kounta-access",
        "--kounta-refresh-token", "demo-kounta-refresh", "--kounta-payment-method-id", "12",
    )  # fmt: skip
    assert code == 0, out
    assert "demo-kounta" not in out
    code, out = gateway("merchants", "show", "Café")
    assert "LEDGER" in out
    assert "https://gw.example/kounta/addon-secret/customer-search" in out
    assert "https://gw.example/kounta/addon-secret/reward-lookup" in out
    hooks = kounta.get("/v1/companies/5678/webhooks")
    assert {h["address"] for h in hooks} == {"https://gw.example/webhooks/kounta"}
    assert sorted(h["topic"] for h in hooks) == sorted(KOUNTA_TOPICS)

    code, out = gateway(
        "rewards", "add", "--merchant", "Café", "--id", "free-muffin", "--title", "Free muffin",
        "--kind", "payment", "--points", "30", "--value", "3.50", "--terms", "Any muffin",
    )  # fmt: skip
    assert code == 0, out
    listing = gateway("rewards", "list", "--merchant", "Café")[1]
    assert "pay-with-points" in listing and "free-muffin" in listing
    assert gateway("rewards", "archive", "--merchant", "Café", "--id", "free-muffin")[0] == 0
    assert "free-muffin" not in gateway("rewards", "list", "--merchant", "Café")[1]
    code, out = gateway(
        "rewards", "add", "--merchant", "Café", "--id", "Bad Id", "--title", "x",
        "--kind", "percent-discount", "--points", "10", "--value", "150",
    )  # fmt: skip
    assert code == 1 and "reward id" in out
    for typo in ("1_0", "٥", "1e3", "-5", "NaN"):
        code, out = gateway(
            "rewards", "add", "--merchant", "Café", "--id", "typo", "--title", "x",
            "--kind", "payment", "--points", typo, "--value", "1",
        )  # fmt: skip
        assert code == 1 and "must be numbers" in out and "Traceback" not in out
    assert "typo" not in gateway("rewards", "list", "--merchant", "Café")[1]


def test_kounta_credentials_are_checked(env: Path, kounta: SandboxHandle) -> None:
    gateway("migrate")
    wrong_company = gateway(
        "merchants", "add", "--name", "X", "--kounta-url", kounta.url, "--kounta-company-id",
        "1", "--kounta-access-token", "demo-kounta-access", "--kounta-payment-method-id", "12",
    )  # fmt: skip
    assert wrong_company[0] == 1 and "belongs to company 5678" in wrong_company[1]
    wrong_method = gateway(
        "merchants", "add", "--name", "X", "--kounta-url", kounta.url, "--kounta-company-id",
        "5678", "--kounta-access-token", "demo-kounta-access", "--kounta-payment-method-id", "99",
    )  # fmt: skip
    assert wrong_method[0] == 1 and "no payment method 99" in wrong_method[1]


def test_worker_once_with_nothing_to_do(env: Path) -> None:
    gateway("migrate")
    code, out = gateway("worker", "--once")
    assert code == 0 and "finished 0, still failing 0" in out


def test_kounta_sandbox_command(tmp_path: Path) -> None:
    port = free_port()
    with sandbox_process("kounta", port, "--token", "k") as announced:
        assert announced == f"Kounta sandbox on http://127.0.0.1:{port}/v1"
        me = httpx.get(
            f"http://127.0.0.1:{port}/v1/companies/me",
            headers={"Authorization": "Bearer k", "Accept": "application/json"},
        )
        assert me.json()["name"] == "Stark Café"


def test_invite_prints_a_connect_link_alone_on_its_last_line(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway("migrate")
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://gw.example")
    code, out = gateway("merchants", "invite", "--name", "Corner Café",
                        "--points-source", "LEDGER")  # fmt: skip
    assert code == 0, out
    link = out.strip().splitlines()[-1]
    assert link.startswith("https://gw.example/connect/") and " " not in link
    again = gateway("merchants", "invite", "--name", "Corner Café")[1].strip().splitlines()[-1]
    assert again != link  # a new link for the same merchant, created once
    listed = gateway("merchants", "list")[1]
    assert listed.count("Corner Café") == 1 and "points=LEDGER" in listed
    assert "not connected" not in gateway("merchants", "show", "Corner Café")[1]


def test_disconnect_removes_the_webhook_forgets_the_tokens_and_shows_it(
    env: Path, kounta: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway("migrate")
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://gw.example")
    monkeypatch.setenv("GATEWAY_KOUNTA_ADDON_TOKEN", "addon-secret")
    code, out = gateway(
        "merchants", "add", "--name", "Café", "--kounta-url", kounta.url,
        "--kounta-company-id", "5678", "--kounta-access-token", "demo-kounta-access",
        "--kounta-refresh-token", "demo-kounta-refresh", "--kounta-payment-method-id", "12",
    )  # fmt: skip
    assert code == 0, out
    assert "CONNECTED" in gateway("merchants", "show", "Café")[1]
    assert len(kounta.get("/v1/companies/5678/webhooks")) == len(KOUNTA_TOPICS)
    code, out = gateway("merchants", "disconnect", "Café", "--pos", "kounta")
    assert code == 0 and "disconnected Kounta" in out, out
    assert kounta.get("/v1/companies/5678/webhooks") == []
    shown = gateway("merchants", "show", "Café")[1]
    assert "DISCONNECTED (disconnected by the merchant)" in shown
    assert "Kounta search" not in shown
    assert gateway("merchants", "disconnect", "Nobody", "--pos", "kounta")[0] == 1


def test_a_kounta_company_another_merchant_holds_is_refused(
    env: Path, kounta: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway("migrate")
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://gw.example")
    kounta_args = ["--kounta-url", kounta.url, "--kounta-company-id", "5678",
                   "--kounta-access-token", "demo-kounta-access",
                   "--kounta-payment-method-id", "12"]  # fmt: skip
    assert gateway("merchants", "add", "--name", "First", *kounta_args)[0] == 0
    hooks = kounta.get("/v1/companies/5678/webhooks")
    code, out = gateway("merchants", "add", "--name", "Second", *kounta_args)
    assert code == 1 and "connected to another merchant (First)" in out, out
    assert kounta.get("/v1/companies/5678/webhooks") == hooks  # the first one's, untouched
    assert "Second" not in gateway("merchants", "list")[1]
    code, out = gateway("merchants", "disconnect", "First", "--pos", "kounta")
    assert code == 0
    assert gateway("merchants", "add", "--name", "Second", *kounta_args)[0] == 0


def _stark(xseries: SandboxHandle) -> None:
    gateway("migrate")
    code, out = gateway(
        "merchants", "add", "--name", "Stark", "--xseries-url", xseries.url,
        "--xseries-token", XSERIES_TOKEN,
    )  # fmt: skip
    assert code == 0, out


def _balance(xseries: SandboxHandle, customer_id: str) -> str:
    found: str = xseries.get("/api/customers", id=customer_id)["customers"][0]["loyalty_balance"]
    return found


def test_points_adjust_credits_and_debits_and_prints_the_new_balance(
    env: Path, xseries: SandboxHandle
) -> None:
    _stark(xseries)
    code, out = gateway(
        "points", "adjust", "--merchant", "Stark", "--customer", TONY, "--points", "5",
        "--reason", "Birthday bonus",
    )  # fmt: skip
    assert (code, out) == (0, "credited 5.00 points: Birthday bonus\nbalance 55.00\n")
    code, out = gateway(
        "points", "adjust", "--merchant", "Stark", "--customer", TONY, "--points=-10.5",
        "--reason", "Correction", "--idempotency-key", "fix-1",
    )  # fmt: skip
    assert (code, out) == (0, "debited 10.50 points: Correction\nbalance 44.50\n")
    assert _balance(xseries, TONY) == "44.50000"
    again = gateway(
        "points", "adjust", "--merchant", "Stark", "--customer", TONY, "--points=-10.5",
        "--reason", "Correction", "--idempotency-key", "fix-1",
    )  # fmt: skip
    assert again == (0, out)  # the same key: the first answer, applied once
    assert _balance(xseries, TONY) == "44.50000"


def test_points_adjust_takes_the_apis_customer_id_too(env: Path, xseries: SandboxHandle) -> None:
    from gateway.domain import ids
    from gateway.domain.ids import Kind
    from gateway.domain.merchant import Pos

    _stark(xseries)
    merchant_id = next(
        line.split()[1] for line in gateway("merchants", "show", "Stark")[1].splitlines()
        if line.startswith("id ")
    )  # fmt: skip
    customer = ids.encode(Kind.CUSTOMER, Pos.XSERIES, merchant_id, JOHNNY)
    code, out = gateway(
        "points", "adjust", "--merchant", "Stark", "--customer", customer, "--points", "1",
        "--reason", "Thanks",
    )  # fmt: skip
    assert (code, out.splitlines()[-1]) == (0, "balance 13.00")
    sale = ids.encode(Kind.SALE, Pos.XSERIES, merchant_id, JOHNNY)
    foreign = ids.encode(Kind.CUSTOMER, Pos.XSERIES, "another-merchant", JOHNNY)
    for wrong in (sale, foreign):
        result = runner.invoke(app, [
            "points", "adjust", "--merchant", "Stark", "--customer", wrong, "--points", "1",
            "--reason", "Thanks",
        ])  # fmt: skip
        assert result.exit_code == 1
        assert result.stderr.startswith("error: no customer with id")
    assert _balance(xseries, JOHNNY) == "13.00000"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--points=-50.01", "--reason", "Too much"], "error: the customer has 50.00 points"),
        (["--points", "5", "--reason", "  "], "error: reason must say why"),
        (["--points", "0", "--reason", "Nothing"], "error: points must not be zero"),
        (["--points", "five", "--reason", "Typo"], "error: points must be a decimal number"),
        (["--points", "5", "--reason", "x", "--merchant", "Nobody"], "error: no merchant"),
    ],
)
def test_points_adjust_refusals_are_clear_and_exit_non_zero(
    env: Path, xseries: SandboxHandle, args: list[str], message: str
) -> None:
    _stark(xseries)
    merchant = [] if "--merchant" in args else ["--merchant", "Stark"]
    result = runner.invoke(app, ["points", "adjust", *merchant, "--customer", TONY, *args])
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.output
    assert _balance(xseries, TONY) == "50.00000"


def test_merchants_set_the_void_policy_and_show_it_and_worker_once_reconciles(
    env: Path, kounta: SandboxHandle
) -> None:
    gateway("migrate")
    code, out = gateway(
        "merchants", "add", "--name", "Café", "--kounta-url", kounta.url,
        "--kounta-company-id", "5678", "--kounta-access-token", "demo-kounta-access",
        "--kounta-refresh-token", "demo-kounta-refresh", "--kounta-payment-method-id", "12",
    )  # fmt: skip
    assert code == 0, out
    assert "redeemed points: RETURN" in gateway("merchants", "show", "Café")[1]
    code, out = gateway("merchants", "set", "Café", "--redeemed-points-on-void", "keep")
    assert code == 0 and "KEEP" in out, out
    assert "redeemed points: KEEP" in gateway("merchants", "show", "Café")[1]
    refused = gateway("merchants", "set", "Café", "--redeemed-points-on-void", "maybe")
    assert refused[0] != 0 and "Traceback" not in refused[1]
    nothing = gateway("merchants", "set", "Café")
    assert nothing[0] == 1 and "--redeemed-points-on-void" in nothing[1]
    assert gateway("merchants", "set", "Nobody", "--redeemed-points-on-void", "keep")[0] == 1

    # The lost completion of a fixture order is found and earned by one pass, once.
    kounta.post("/_sandbox/orders/93824701/complete", {"deliveries": 0}).raise_for_status()
    result = runner.invoke(app, ["worker", "--once"])
    out = result.stdout
    assert result.exit_code == 0, result.output
    assert "reconciled Café Kounta since" in out and "looked at 1, failed 0" in out
    # Progress on stderr, merchant by merchant, never mixed into the report.
    assert "reconciling Café Kounta (merchant 1/1)" in result.stderr
    assert "reconciling" not in out
    code, again = gateway("worker", "--once")
    assert code == 0 and "failed 0" in again
