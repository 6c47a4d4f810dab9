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
    "Calls to a POS API (each attempt), by POS, endpoint (method and path template, "
    "never an id) and outcome (status code, timeout or error).",
    ["pos", "endpoint", "status"],
    registry=REGISTRY,
)
UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_request_seconds",
    "Time of one attempt at a POS API call, by POS and endpoint.",
    ["pos", "endpoint"],
    registry=REGISTRY,
)
GRAPHQL_OPERATIONS = Counter(
    "gateway_graphql_operations_total",
    "GraphQL operations by name (anonymous; other past a bound, or when not a plain name) "
    "and outcome: ok, the first error member answered (its type name), or error (top-level "
    "errors).",
    ["operation", "outcome"],
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
UNSETTLED_OPERATIONS = Gauge(
    "gateway_unsettled_operations",
    "Operations the worker found not settled at its last pass, by kind: write (a POS write "
    "whose answer was lost, past its settle window), redemption (unfinished), operation "
    "(an attempt that died at work), take_back (unfinished); at most 100 of each, what "
    "one pass takes on.",
    ["kind"],
    registry=REGISTRY,
)
WORKER_LAST_PASS = Gauge(
    "gateway_worker_last_pass_timestamp_seconds",
    "When this process's worker last completed a pass (Unix time; 0: never).",
    registry=REGISTRY,
)
WORKER_LAG = Gauge(
    "gateway_worker_lag_seconds",
    "Seconds since this process's worker last completed a pass (since it started, before "
    "the first); NaN in a process that runs no worker.",
    registry=REGISTRY,
)
RATE_BUDGET_REMAINING = Gauge(
    "gateway_upstream_rate_budget_remaining",
    "Calls left in a POS account's rate window, as its last answer said, by POS and account "
    "(the store's API address).",
    ["pos", "account"],
    registry=REGISTRY,
)
