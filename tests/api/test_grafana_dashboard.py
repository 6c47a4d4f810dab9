"""docs/grafana-dashboard.json queries only what /metrics says: every metric name in every
PromQL expression has samples in the exposition once the app has done the work behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
from prometheus_client.parser import text_string_to_metric_families

from gateway.services.context import Services
from gateway.services.recovery import recover_once
from tests.api.test_kounta_adapters import JOHN_ORDER, john
from tests.gateways import Gateway, KountaPos, reward_url
from tests.support import SandboxHandle

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
# Grafana's own variables, which Prometheus never sees as such.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert found
    return found


def metric_names(node: Any) -> set[str]:
    """The metric names a PromQL expression selects, from its syntax tree."""
    if isinstance(node, promql_parser.VectorSelector):
        assert node.name, f"select by name: {node}"
        return {node.name}
    names: set[str] = set()
    for child in ("lhs", "rhs", "expr", "param", "vector_selector"):
        if getattr(node, child, None) is not None:
            names |= metric_names(getattr(node, child))
    for arg in getattr(node, "args", None) or ():
        names |= metric_names(arg)
    return names


def parse(expr: str) -> Any:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def test_the_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


async def test_every_metric_the_dashboard_queries_is_exposed(
    both: Gateway, xseries: SandboxHandle
) -> None:
    # The work behind every panel: GraphQL reads (POS calls, the cache), a redemption, a
    # worker pass, then a rate budget spent.
    await both.data("query Profile { merchant { name loyaltyEnabled } }")
    await both.data("query Again { merchant { name loyaltyEnabled } }")
    pos = KountaPos(both)
    assert await pos.redeem(reward_url(await john(pos), "free-coffee"), JOHN_ORDER) == {
        "success": True
    }
    await recover_once(Services(both.runtime))
    xseries.faults(rate_limit={"limit": 1, "window_s": 60})
    for _ in range(3):  # X-Series' search, never cached: the budget refuses what is over
        await both.post('query { customers(search: "Stark") { id } }')

    exposition = (await both.client.get("/metrics")).text
    exposed = {
        sample.name
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    queried = set().union(*(metric_names(parse(expr)) for expr in expressions()))
    assert "gateway_upstream_request_seconds_bucket" in queried
    assert queried - exposed == set()


def test_metric_names_are_read_from_the_syntax_tree() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(a_bucket[$__rate_interval])))"
        ' / ignoring(x) (time() - max(b{c="d"}))'
    )
    assert metric_names(parse(expr)) == {"a_bucket", "b"}
