"""``gateway sandbox xseries|kounta`` with their OAuth flags, run as real processes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.sandbox.consent import APP, consent_query, read_form, redirect_params
from tests.support import free_port, sandbox_process

CALLBACK = "https://gw.example/cb"
SANDBOXES = {
    "xseries": ("/connect", "/api/1.0/token", "/api/config", {"scope": "retailer:read"}, {}),
    "kounta": ("/authorize", "/v1/token", "/v1/companies/me", {}, {"Accept": "application/json"}),
}


@contextmanager
def sandbox(which: str, *flags: str) -> Iterator[httpx.Client]:
    port = free_port()
    with sandbox_process(which, port, *flags) as announced:
        assert "sandbox on http://127.0.0.1" in announced
        headers = SANDBOXES[which][4]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            yield client


def connect(
    client: httpx.Client, which: str, app: dict[str, str], redirect_uri: str
) -> httpx.Response:
    consent, token, _, asks, _ = SANDBOXES[which]
    query = consent_query(**asks, client_id=app["client_id"], redirect_uri=redirect_uri)
    page = client.get(consent, params=query)
    assert page.status_code == 200, page.text
    form = read_form(page.text)
    code = redirect_params(client.post(form.action, data=form.submission("approve")))["code"]
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    return client.post(token, data={**body, **app})


@pytest.mark.parametrize("which", list(SANDBOXES))
def test_the_sandbox_knows_the_oauth_app_its_flags_name(which: str) -> None:
    mine = {"client_id": "my-app", "client_secret": "my-secret"}
    flags = ("--client-id", "my-app", "--client-secret", "my-secret", "--token-lifetime-s", "60",
             "--redirect-uri", CALLBACK, "--redirect-uri", "https://gw.example/other")  # fmt: skip
    consent, _, probe, asks, _ = SANDBOXES[which]
    with sandbox(which, *flags) as client:
        default_app = client.get(consent, params=consent_query(**asks, redirect_uri=CALLBACK))
        assert default_app.status_code == 400
        unregistered = client.get(
            consent,
            params=consent_query(**asks, client_id="my-app", redirect_uri="https://gw.example/x"),
        )
        assert unregistered.status_code == 400
        answer = connect(client, which, mine, "https://gw.example/other")
        assert answer.status_code == 200, answer.text
        pair = answer.json()
        assert pair["expires_in"] == 60
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        assert client.get(probe, headers=bearer).status_code == 200
        wrong = connect(
            client, which, {**mine, "client_secret": "gateway-sandbox-secret"}, CALLBACK
        )
        assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_client"})


@pytest.mark.parametrize(("which", "lifetime_s"), [("xseries", 86400), ("kounta", 3600)])
def test_by_default_the_sandbox_knows_the_gateways_development_app(
    which: str, lifetime_s: int
) -> None:
    with sandbox(which) as client:
        answer = connect(client, which, APP, CALLBACK)
        assert answer.status_code == 200, answer.text
        assert answer.json()["expires_in"] == lifetime_s


@pytest.mark.parametrize("which", list(SANDBOXES))
def test_a_redirect_uri_flag_must_be_an_absolute_url(which: str) -> None:
    result = CliRunner().invoke(app, ["sandbox", which, "--redirect-uri", "/callback"])
    assert result.exit_code == 1
    assert "error: redirect URI '/callback' is not an absolute http(s) URL" in result.output
    assert "Traceback" not in result.output
