"""Prometheus metrics, one registry for the process (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "Requests served, by route and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "gateway_http_request_seconds",
    "Time to serve a request, by route.",
    ["route", "method"],
    registry=REGISTRY,
)
UPSTREAM_REQUESTS = Counter(
    "gateway_upstream_requests_total",
    "Calls to a POS API, by POS, method and outcome (status code, timeout or error).",
    ["pos", "method", "status"],
    registry=REGISTRY,
)
UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_request_seconds",
    "Time of one call to a POS API.",
    ["pos", "method"],
    registry=REGISTRY,
)
CACHE_LOOKUPS = Counter(
    "gateway_cache_lookups_total",
    "Cache lookups by namespace and result (hit or miss).",
    ["namespace", "result"],
    registry=REGISTRY,
)
REDEMPTIONS = Counter(
    "gateway_redemptions_total",
    "Reward redemptions and loyalty payments by POS and final status.",
    ["pos", "status"],
    registry=REGISTRY,
)
UPSTREAM_BUDGET_REFUSALS = Counter(
    "gateway_upstream_budget_refusals_total",
    "POS calls the gateway did not send because the account's rate budget was spent, by "
    "POS and priority (caller or background).",
    ["pos", "priority"],
    registry=REGISTRY,
)
POS_CONNECTIONS = Gauge(
    "gateway_pos_connections",
    "Merchants' POS connections by POS and state (CONNECTED, RECONNECT_NEEDED, "
    "DISCONNECTED), as the recovery worker last counted them: alert on RECONNECT_NEEDED.",
    ["pos", "status"],
    registry=REGISTRY,
)
