"""What an operator sees of each request (docs/metrics.md): Server-Timing on every answer,
the upstream, GraphQL, worker and rate-budget metrics, and log lines that say which
request, merchant and operation, with the POS calls it made, and no secret."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.api.graphql import observe
from gateway.domain.ids import Kind
from gateway.observability import configure_logging
from gateway.services.context import Services
from gateway.services.recovery import recover_once
from tests.api.test_graphql_sales import pay
from tests.api.test_kounta_adapters import JOHN_KOUNTA, JOHN_ORDER, john
from tests.conftest import XSERIES_TOKEN
from tests.demo_ids import JOHN_SMITH, JOHNNY_SALE, TONY
from tests.gateways import (
    ADDON_TOKEN,
    KOUNTA_ACCESS,
    KOUNTA_COMPANY,
    KOUNTA_REFRESH,
    Gateway,
    KountaPos,
    reward_url,
)
from tests.services.test_graphql_recovery import LOSE_THE_ANSWER
from tests.support import SandboxHandle

# W3C Server-Timing: metrics separated by commas, each a name and ;dur=<milliseconds>.
SERVER_TIMING = re.compile(
    r"upstream;dur=(\d+(?:\.\d+)?), db;dur=(\d+(?:\.\d+)?), total;dur=(\d+(?:\.\d+)?)"
)

Labels = frozenset[tuple[str, str]]


def timing(response: httpx.Response) -> dict[str, float]:
    found = SERVER_TIMING.fullmatch(response.headers["server-timing"])
    assert found, response.headers["server-timing"]
    upstream, db, total = (float(value) for value in found.groups())
    return {"upstream": upstream, "db": db, "total": total}


async def metrics(gw: Gateway) -> dict[str, dict[Labels, float]]:
    """Every sample of ``/metrics``, by sample name and labels."""
    text = (await gw.client.get("/metrics")).text
    found: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return found


def value(samples: dict[str, dict[Labels, float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(frozenset(labels.items()), 0.0)


@contextmanager
def json_logs(capfd: pytest.CaptureFixture[str]) -> Iterator[list[dict[str, Any]]]:
    """The JSON lines logged in the block (at INFO), parsed."""
    configure_logging("INFO", json=True)
    capfd.readouterr()
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        text = capfd.readouterr().err
        configure_logging("WARNING", json=False)
        lines.extend(json.loads(line) for line in text.splitlines() if line.startswith("{"))


# --------------------------------------------------------------------------- Server-Timing


async def test_server_timing_on_health_graphql_and_kounta_answers(
    both: Gateway, xseries: SandboxHandle
) -> None:
    health = timing(await both.client.get("/healthz"))
    assert health["upstream"] == 0 and health["db"] == 0 and health["total"] > 0

    xseries.faults(latency_ms=30)
    search = await both.post('query Find { customers(search: "Stark") { id } }')
    assert search.status_code == 200 and "errors" not in search.json()
    graphql = timing(search)
    assert graphql["upstream"] >= 30  # X-Series answered no sooner
    assert graphql["total"] >= graphql["upstream"] and graphql["db"] > 0

    lookup = await KountaPos(both).lookup(JOHN_KOUNTA, JOHN_SMITH)
    assert lookup.status_code == 200
    kounta = timing(lookup)
    assert kounta["upstream"] >= 30 and kounta["total"] >= kounta["upstream"]


async def test_no_upstream_time_when_served_from_the_cache(gateway: Gateway) -> None:
    query = "query Profile { merchant { name loyaltyEnabled loyaltyRatio } }"
    before = await metrics(gateway)
    first = await gateway.post(query)
    assert first.status_code == 200 and "errors" not in first.json()
    assert timing(first)["upstream"] > 0  # the account's loyalty settings, read at X-Series
    again = await gateway.post(query)
    assert again.json() == first.json()
    assert timing(again)["upstream"] == 0
    after = await metrics(gateway)
    hits = "gateway_cache_lookups_total"
    config = {"namespace": "xseries-config"}
    assert value(after, hits, **config, result="miss") > value(
        before, hits, **config, result="miss"
    )
    assert value(after, hits, **config, result="hit") > value(before, hits, **config, result="hit")


# --------------------------------------------------------------------------- /metrics


async def test_upstream_calls_are_counted_by_pos_endpoint_and_status(both: Gateway) -> None:
    before = await metrics(both)
    pos = KountaPos(both)
    await pos.redeem(reward_url(await john(pos), "free-coffee"), JOHN_ORDER)  # reads the order
    await both.data(
        "query($id: ID!) { customer(id: $id) { loyaltyBalance } }",
        {"id": both.id(Kind.CUSTOMER, TONY)},
    )
    after = await metrics(both)
    kounta = {"pos": "Kounta", "endpoint": "GET /v1/companies/{id}/orders/{id}"}
    calls = "gateway_upstream_requests_total"
    assert value(after, calls, **kounta, status="200") > value(
        before, calls, **kounta, status="200"
    )
    seconds = "gateway_upstream_request_seconds_count"
    assert value(after, seconds, **kounta) > value(before, seconds, **kounta)
    xseries = {"pos": "X-Series", "endpoint": "GET /api/customers"}
    assert value(after, calls, **xseries, status="200") > value(
        before, calls, **xseries, status="200"
    )
    # Ids never become labels: every endpoint is a template.
    endpoints = {dict(labels)["endpoint"] for labels in after[calls]}
    for raw in (TONY, JOHN_SMITH, JOHN_ORDER, KOUNTA_COMPANY):
        assert not [e for e in endpoints if raw in e], raw


async def test_graphql_operations_by_name_and_outcome(gateway: Gateway) -> None:
    before = await metrics(gateway)
    await gateway.data("query Who { merchant { name } }")
    await gateway.data("{ __typename }")
    zero = await gateway.data(
        "mutation Gift($i: AdjustPointsInput!) { adjustPoints(input: $i) { __typename } }",
        {
            "i": {
                "idempotencyKey": "g-1",
                "customerId": gateway.id(Kind.CUSTOMER, TONY),
                "points": "0",
                "reason": "nothing",
            }
        },
    )
    assert zero["adjustPoints"]["__typename"] == "ValidationError"
    assert "errors" in (await gateway.post("query Broken { nope }")).json()
    unnamed = await gateway.client.post(
        "/graphql",
        json={"query": "query A { __typename }", "operationName": "not a name"},
        headers={"Authorization": f"Bearer {gateway.key}"},
    )
    assert "errors" in unnamed.json()
    long_name = "Q" * 65
    await gateway.data(f"query {long_name} {{ __typename }}")
    after = await metrics(gateway)

    def grew(operation: str, outcome: str) -> bool:
        name, labels = (
            "gateway_graphql_operations_total",
            {"operation": operation, "outcome": outcome},
        )
        return value(after, name, **labels) == value(before, name, **labels) + 1

    assert grew("Who", "ok")
    assert grew("anonymous", "ok")
    assert grew("Gift", "ValidationError")
    assert grew("Broken", "error")
    assert value(after, "gateway_graphql_operations_total", operation="other", outcome="error") >= 1
    assert value(after, "gateway_graphql_operations_total", operation="other", outcome="ok") >= 1
    assert not [
        labels
        for labels in after["gateway_graphql_operations_total"]
        if dict(labels)["operation"] in ("not a name", long_name)
    ]


@pytest.fixture
def names_counted_so_far() -> Iterator[None]:
    """The names this process has counted stay as they were for the tests after this one."""
    before = set(observe.counted)
    yield
    observe.counted.clear()
    observe.counted.update(before)


@pytest.mark.usefixtures("names_counted_so_far")
async def test_invented_operation_names_cannot_grow_the_series_without_end(
    gateway: Gateway,
) -> None:
    for n in range(observe.MAX_NAMES + 60):
        await gateway.data(f"query Invented{n} {{ __typename }}")
    names = {
        dict(labels)["operation"]
        for labels in (await metrics(gateway))["gateway_graphql_operations_total"]
    }
    assert len(names) <= observe.MAX_NAMES + 1  # the bound, and "other"
    assert "other" in names and f"Invented{observe.MAX_NAMES + 59}" not in names


async def test_redemptions_and_rate_budget_headroom(both: Gateway, xseries: SandboxHandle) -> None:
    xseries.faults(rate_limit={"limit": 50, "window_s": 60})
    before = await metrics(both)
    pos = KountaPos(both)
    assert await pos.redeem(reward_url(await john(pos), "free-coffee"), JOHN_ORDER) == {
        "success": True
    }
    after = await metrics(both)
    redeemed = "gateway_redemptions_total"
    assert sum(after[redeemed].values()) == sum(before.get(redeemed, {}).values()) + 1
    headroom = value(
        after,
        "gateway_upstream_rate_budget_remaining",
        pos="X-Series",
        account=xseries.url.rstrip("/"),
    )
    spent = sum(xseries.stats()["requests"].values())
    assert headroom == 50 - spent  # as X-Series' last answer said


async def test_worker_pass_reports_unsettled_operations_lag_and_connections(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    xseries.faults(**LOSE_THE_ANSWER)
    lost = await pay(gateway, gateway.id(Kind.SALE, JOHNNY_SALE), "5", key="lost")
    assert lost["code"] == "OUTCOME_PENDING"
    services = Services(gateway.runtime)
    await recover_once(services)  # finds the write unsettled, and settles it
    found = await metrics(gateway)
    assert value(found, "gateway_unsettled_operations", kind="write") == 1
    passed_at = value(found, "gateway_worker_last_pass_timestamp_seconds")
    assert time.time() - 60 < passed_at <= time.time()
    assert 0 <= value(found, "gateway_worker_lag_seconds") < 60
    assert value(found, "gateway_pos_connections", pos="XSERIES", status="CONNECTED") >= 1
    await recover_once(services)
    assert value(await metrics(gateway), "gateway_unsettled_operations", kind="write") == 0


# --------------------------------------------------------------------------- logs


async def test_request_id_is_echoed_or_made(gateway: Gateway) -> None:
    longest = "a.b_c-" + "x" * 122
    echoed = await gateway.client.get("/healthz", headers={"X-Request-ID": longest})
    assert echoed.headers["x-request-id"] == longest
    for unfit in ("x" * 129, "two words", "semi;colon", ""):
        made = await gateway.client.get("/healthz", headers={"X-Request-ID": unfit})
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"]), unfit


async def test_log_lines_carry_request_merchant_operation_and_upstream_calls(
    both: Gateway, capfd: pytest.CaptureFixture[str]
) -> None:
    with json_logs(capfd) as lines:
        response = await both.client.post(
            "/graphql",
            json={"query": 'query Find { customers(search: "Stark") { id } }'},
            headers={"Authorization": f"Bearer {both.key}", "X-Request-ID": "till-7.req_42"},
        )
        unauthenticated = await both.post("query Mine { merchant { name } }", key="gwk_nope")
        lookup = await KountaPos(both).lookup(JOHN_KOUNTA, JOHN_SMITH)
    assert response.headers["x-request-id"] == "till-7.req_42"
    access = [line for line in lines if line["event"] == "request"]
    assert len(access) == 3
    find, refused, kounta = access
    assert find["request_id"] == "till-7.req_42"
    assert find["merchant_id"] == both.merchant.id and find["operation"] == "Find"
    assert find["upstream_calls"] >= 2 and find["upstream_ms"] > 0  # both POS searched
    assert find["status"] == 200 and find["ms"] >= find["upstream_ms"]
    assert refused["request_id"] == unauthenticated.headers["x-request-id"]
    assert "merchant_id" not in refused and refused["upstream_calls"] == 0
    assert kounta["request_id"] == lookup.headers["x-request-id"]
    assert kounta["merchant_id"] == both.merchant.id and kounta["upstream_calls"] >= 1
    assert kounta["path"] == "/kounta/***/reward-lookup"
    # Every line logged while serving a request says which one.
    for line in lines:
        assert line.get("request_id") in {
            r.headers["x-request-id"] for r in (response, unauthenticated, lookup)
        }, line
    text = json.dumps(lines)
    for secret in (both.key, ADDON_TOKEN, XSERIES_TOKEN, KOUNTA_ACCESS, KOUNTA_REFRESH, "gwk_nope"):
        assert secret not in text, secret
