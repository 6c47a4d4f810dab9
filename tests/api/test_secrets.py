"""Secrets never reach the logs: API keys, POS tokens, the add-on token, offers."""

from __future__ import annotations

import pytest

from gateway.observability import configure_logging, redact_path
from tests.api.test_kounta_adapters import JOHN_ORDER, john
from tests.conftest import XSERIES_TOKEN
from tests.gateways import (
    ADDON_TOKEN,
    KOUNTA_ACCESS,
    KOUNTA_REFRESH,
    Gateway,
    KountaPos,
    reward_url,
)


async def test_a_whole_flow_logs_no_secret(
    both: Gateway, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG", json=True)
    try:
        await _flow(both, capfd)
    finally:
        configure_logging("WARNING", json=False)


async def _flow(both: Gateway, capfd: pytest.CaptureFixture[str]) -> None:
    pos = KountaPos(both)
    url = reward_url(await john(pos), "free-coffee")
    assert await pos.redeem(url, JOHN_ORDER) == {"success": True}
    await both.data('{ customers(search: "Stark") { id } }')
    await both.post("{ merchant { name } }", key="gwk_wrong-key-attempt")
    logs = capfd.readouterr().err
    assert "request" in logs and "upstream" in logs  # we did log
    offer = url.split("/kounta/redeem/")[1].split("?")[0]
    for secret in (ADDON_TOKEN, both.key, XSERIES_TOKEN, KOUNTA_ACCESS, KOUNTA_REFRESH, offer,
                   "gwk_wrong-key-attempt"):  # fmt: skip
        assert secret not in logs, secret


def test_paths_with_secrets_are_redacted() -> None:
    assert redact_path("/kounta/s3cr3t/customer-search") == "/kounta/***/customer-search"
    assert redact_path("/kounta/redeem/abc.def") == "/kounta/redeem/***"
    # An X-Series webhook address holds the merchant's secret (X-Series signs nothing).
    assert redact_path("/webhooks/xseries/m-1.s3cr3t-Part_x") == "/webhooks/xseries/***"
    assert redact_path("/webhooks/kounta") == "/webhooks/kounta"
