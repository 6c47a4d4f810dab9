"""The HTTP layer's small decisions, checked in isolation (no network)."""

from __future__ import annotations

import email.utils
import random
from decimal import Decimal

import pytest

from gateway.domain.errors import MAX_RETRY_AFTER_S
from gateway.jsonx import dumps as encode_json
from gateway.jsonx import loads as decode_json
from gateway.pos.http import CircuitBreaker, HttpPolicy, endpoint, retry_after_seconds

NOW = 1_800_000_000.0


def test_retry_after_in_seconds() -> None:
    assert retry_after_seconds("3", NOW) == 3.0
    assert retry_after_seconds(" 0 ", NOW) == 0.0


def test_retry_after_as_http_date() -> None:
    header = email.utils.formatdate(NOW + 7, usegmt=True)
    assert retry_after_seconds(header, NOW) == pytest.approx(7.0)


def test_retry_after_in_the_past_means_now() -> None:
    header = email.utils.formatdate(NOW - 60, usegmt=True)
    assert retry_after_seconds(header, NOW) == 0.0


@pytest.mark.parametrize("header", [None, "", "soon", "Wed, 99 Foo 2020"])
def test_retry_after_unreadable(header: str | None) -> None:
    assert retry_after_seconds(header, NOW) is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("99999999999999999999", MAX_RETRY_AFTER_S),  # digits beyond any float's exactness
        ("9" * 5000, MAX_RETRY_AFTER_S),  # beyond what int() converts
        ("3601", MAX_RETRY_AFTER_S),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S),
        ("Mon, 01 Jan 0001 00:00:00 GMT", 0.0),
        (" 7 ", 7.0),
    ],
)
def test_retry_after_is_capped(header: str, seconds: float) -> None:
    assert retry_after_seconds(header, NOW) == seconds


@pytest.mark.parametrize(
    "header",
    [
        "1e999",  # delta-seconds are digits only: no exponent, no infinity
        "Infinity",
        "inf",
        "NaN",
        "-5",
        "+5",
        "3.5",
        "1_0",
        "٣",  # ARABIC-INDIC DIGIT THREE: isdigit() says yes, RFC 9110 says no
        "Fri, 31 Dec 99999 23:59:59 GMT",
        "Fri, 32 Dec 2030 23:59:59 GMT",
        "Fri, 31 Dec 2030 25:61:61 GMT",
    ],
)
def test_retry_after_that_is_not_delta_seconds_or_a_date_is_unreadable(header: str) -> None:
    assert retry_after_seconds(header, NOW) is None


def test_backoff_is_jittered_and_capped() -> None:
    policy = HttpPolicy(backoff_base_s=0.5, backoff_max_s=2.0)
    rng = random.Random(7)
    waits = [policy.backoff(attempt, rng) for attempt in range(8) for _ in range(50)]
    assert all(0 <= w <= 2.0 for w in waits)
    assert len(set(waits)) > 100  # jitter, not a fixed schedule


def test_breaker_opens_after_threshold_and_lets_one_trial_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, reset_s=10, clock=lambda: now[0])
    for _ in range(3):
        assert breaker.admit() is False  # closed: admitted normally
        breaker.record_failure()
    assert breaker.admit() is None
    now[0] = 10.5
    assert breaker.admit() is True  # the trial
    assert breaker.admit() is None  # only one at a time
    breaker.record_success()
    assert breaker.admit() is False


def test_breaker_reopens_when_the_trial_fails() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, reset_s=5, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 6
    assert breaker.admit() is True
    breaker.record_failure()
    assert breaker.admit() is None


def test_a_trial_that_ends_without_a_verdict_frees_the_slot() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, reset_s=5, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 6
    assert breaker.admit() is True
    breaker.end_trial()  # cancelled, or its credentials could not be loaded
    assert breaker.admit() is True


def test_json_keeps_decimals_exact_both_ways() -> None:
    body = {"amount": Decimal("25.30"), "tiny": Decimal("0.00001"), "n": 3}
    assert encode_json(body) == b'{"amount":25.30,"tiny":0.00001,"n":3}'
    parsed = decode_json(b'{"amount": 25.30, "big": 12345678901234567.89, "n": 3}')
    assert parsed == {"amount": Decimal("25.30"), "big": Decimal("12345678901234567.89"), "n": 3}


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/api/register_sales/3b0e8c1a-0000-4000-8000-00000000a001",
         "GET /api/register_sales/{id}"),
        ("GET", "/api/2.0/search", "GET /api/2.0/search"),
        ("POST", "/api/2026-07/loyalty/adjustments/bulk",
         "POST /api/2026-07/loyalty/adjustments/bulk"),
        ("POST", "/api/1.0/token", "POST /api/1.0/token"),
        ("PUT", "/v1/companies/5678/orders/93824701", "PUT /v1/companies/{id}/orders/{id}"),
        ("GET", "/v1/companies/me", "GET /v1/companies/me"),
        ("GET", "/v1/companies/5678/orders/deleted", "GET /v1/companies/{id}/orders/deleted"),
        ("DELETE", "/v1/companies/5678/webhooks/77", "DELETE /v1/companies/{id}/webhooks/{id}"),
        ("GET", "/api/products/Mug%20Blue", "GET /api/products/{id}"),
        ("GET", "/v1/companies/5678/customers/v2", "GET /v1/companies/{id}/customers/{id}"),
    ],
)  # fmt: skip
def test_an_endpoint_label_is_a_template_never_an_id(method: str, path: str, template: str) -> None:
    assert endpoint(method, path) == template
