"""The X-Series client against the X-Series sandbox, over real HTTP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.domain.errors import Unauthorized
from gateway.jsonx import dumps
from gateway.pos.errors import (
    SessionConflict,
    UpstreamAuthError,
    UpstreamForbidden,
    UpstreamNotFound,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamShapeError,
    UpstreamUnavailable,
)
from gateway.pos.fields import field, parse
from gateway.pos.http import BearerToken, HttpLayer, HttpPolicy
from gateway.pos.xseries import (
    Adjustment,
    AdjustmentApplied,
    AdjustmentRefused,
    XSeriesClient,
)
from gateway.pos.xseries.models import (
    LineWrite,
    NewSale,
    PaymentWrite,
    RegisterSale,
    payment_added,
    sale_write_payload,
)
from tests.conftest import TEST_POLICY, XSERIES_TOKEN
from tests.demo_ids import (
    CASH,
    GOLD_WATCH,
    GST,
    JOHNNY,
    JOHNNY_SALE,
    LOYALTY,
    PEPPER,
    REGISTER,
    TONY,
    TSHIRT,
    USER,
    VIP_GROUP,
)
from tests.support import SandboxHandle, until

pytestmark = pytest.mark.asyncio


def balance(xseries: SandboxHandle, customer_id: str) -> Decimal:
    customers = xseries.get("/api/customers", id=customer_id)["customers"]
    return Decimal(customers[0]["loyalty_balance"])


def tshirt_line(quantity: int = 1, loyalty: str = "2") -> dict[str, Any]:
    return {
        "product_id": TSHIRT,
        "quantity": quantity,
        "price": Decimal("20"),
        "tax": Decimal("3"),
        "tax_id": GST,
        "loyalty_value": Decimal(loyalty),
    }


def new_sale(
    status: str, lines: list[dict[str, Any]], payments: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    return {
        "register_id": REGISTER,
        "user_id": USER,
        "customer_id": TONY,
        "status": status,
        "register_sale_products": lines,
        "register_sale_payments": list(payments),
    }


async def save(client: XSeriesClient, payload: dict[str, Any]) -> RegisterSale:
    """POST a raw sale payload through the client's HTTP layer (the wire, not the model)."""
    response = await client.upstream.post("/api/register_sales", payload)
    return parse(RegisterSale, field(response.data, "register_sale", "X-Series"), "X-Series")


# --------------------------------------------------------------------------- reads


async def test_config(xseries_client: XSeriesClient) -> None:
    config = await xseries_client.get_config()
    assert config.enable_loyalty is True
    assert config.loyalty_ratio == Decimal("0.1")
    assert config.display_retail_price_tax_inclusive is False
    assert config.retailer_name == "Stark Industries Store"


async def test_products_with_price_book_entries(xseries_client: XSeriesClient) -> None:
    page = await xseries_client.list_products()
    ids = {product.id for product in page.items}
    assert {TSHIRT, GOLD_WATCH} <= ids
    watch = await xseries_client.get_product(GOLD_WATCH)
    by_group = {entry.customer_group_id: entry.loyalty_value for entry in watch.price_book_entries}
    assert by_group[VIP_GROUP] == Decimal("333")
    assert Decimal("7") in by_group.values()


async def test_customers_by_id_code_and_email(xseries_client: XSeriesClient) -> None:
    tony = await xseries_client.get_customer(TONY)
    assert (tony.first_name, tony.last_name) == ("Tony", "Stark")
    assert tony.loyalty_balance == Decimal("50") and tony.enable_loyalty
    by_code = await xseries_client.list_customers(code="JBRAVO")
    assert [c.id for c in by_code.items] == [JOHNNY]
    by_email = await xseries_client.list_customers(email="TONY@stark.example")
    assert [c.id for c in by_email.items] == [TONY]
    pepper = await xseries_client.get_customer(PEPPER)
    assert pepper.enable_loyalty is False


async def test_search_customers_by_the_documented_fields(xseries_client: XSeriesClient) -> None:
    found = await xseries_client.search_customers(last_name="stark")
    assert [c.id for c in found] == [TONY]
    assert found[0].loyalty_balance == Decimal("50")
    by_code = await xseries_client.search_customers(customer_code="JBRAVO")
    assert [c.id for c in by_code] == [JOHNNY]
    by_company = await xseries_client.search_customers(company_name="stark", first_name="to")
    assert [c.id for c in by_company] == [TONY]
    assert await xseries_client.search_customers(first_name="nobody") == []


async def test_payment_types_registers_users(xseries_client: XSeriesClient) -> None:
    types = await xseries_client.list_payment_types()
    loyalty = [t for t in types if t.is_loyalty]
    assert [t.id for t in loyalty] == [LOYALTY]
    assert [r.id for r in await xseries_client.list_registers()] == [REGISTER]
    assert USER in [u.id for u in await xseries_client.list_users()]


async def test_sales_list_get_and_search(xseries_client: XSeriesClient) -> None:
    sale = await xseries_client.get_sale(JOHNNY_SALE)
    assert sale.status == "ONACCOUNT" and sale.customer_id == JOHNNY
    assert len(sale.lines) == 1 and len(sale.payments) == 1
    onaccount = await xseries_client.list_sales(statuses=["ONACCOUNT"])
    assert [s.id for s in onaccount.items] == [JOHNNY_SALE]
    searched = await xseries_client.search_sales(customer_id=JOHNNY)
    assert [s.id for s in searched] == [JOHNNY_SALE]
    assert searched[0].lines[0].loyalty_value == Decimal("2")


async def test_unknown_ids_are_not_found(xseries_client: XSeriesClient) -> None:
    with pytest.raises(UpstreamNotFound):
        await xseries_client.get_sale(str(uuid.uuid4()))
    with pytest.raises(UpstreamNotFound):
        await xseries_client.get_customer(str(uuid.uuid4()))
    with pytest.raises(UpstreamNotFound):
        await xseries_client.get_product(str(uuid.uuid4()))


async def test_an_id_cannot_escape_its_path_segment(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    with pytest.raises(UpstreamNotFound):
        await xseries_client.get_sale("../customers")
    assert xseries.count("GET /api/customers") == 0


# --------------------------------------------------------------------------- pagination


def _many_customers(count: int) -> dict[str, Any]:
    return {
        "customers": [
            {
                "id": str(uuid.UUID(int=n + 1)),
                "customer_code": f"C{n:04d}",
                "first_name": "Customer",
                "last_name": f"{n:04d}",
                "enable_loyalty": 1,
                "loyalty_balance": "0.00000",
            }
            for n in range(count)
        ],
        "registers": [{"id": REGISTER, "name": "Main Register"}],
    }


async def test_pagination_followed_to_the_end(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.reset(_many_customers(450))
    first = await xseries_client.list_customers(page=1, page_size=200)
    assert len(first.items) == 200 and first.has_next and first.pagination.pages == 3
    everyone = [c.id async for c in xseries_client.iter_customers()]
    assert len(everyone) == 450 == len(set(everyone))
    assert xseries.count("GET /api/customers") == 1 + 3


# --------------------------------------------------------------------------- writes


async def test_create_and_update_customer(xseries_client: XSeriesClient) -> None:
    created = await xseries_client.save_customer(
        {"first_name": "Bruce", "last_name": "Banner", "email": "bruce@example.com"}
    )
    assert created.id and created.loyalty_balance == 0
    updated = await xseries_client.save_customer({"id": created.id, "last_name": "Banner MD"})
    assert updated.id == created.id and updated.last_name == "Banner MD"
    assert (await xseries_client.get_customer(created.id)).email == "bruce@example.com"


async def test_closing_a_sale_adds_its_loyalty(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    before = balance(xseries, TONY)
    sale = await save(xseries_client,
        new_sale("CLOSED", [tshirt_line(quantity=3)], [
            {"retailer_payment_type_id": CASH, "amount": Decimal("69")}
        ])
    )  # fmt: skip
    assert sale.status == "CLOSED" and sale.total_price == Decimal("60")
    assert sale.total_tax == Decimal("9")
    assert balance(xseries, TONY) == before + Decimal("6")


async def test_saved_sale_earns_only_when_closed(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    before = balance(xseries, TONY)
    sale = await save(xseries_client, new_sale("SAVED", [tshirt_line()]))
    assert balance(xseries, TONY) == before
    cash = PaymentWrite(CASH, Decimal("23"), datetime.now(UTC))
    closed = await save(xseries_client, payment_added(sale, cash, status="CLOSED"))
    assert closed.status == "CLOSED" and closed.state == "closed"
    assert balance(xseries, TONY) == before + Decimal("2")


async def test_loyalty_payment_lowers_balance_and_is_refused_above_it(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    await save(xseries_client,
        new_sale("SAVED", [tshirt_line()], [
            {"retailer_payment_type_id": LOYALTY, "amount": Decimal("10.50")}
        ])
    )  # fmt: skip
    assert balance(xseries, TONY) == Decimal("39.50")
    with pytest.raises(UpstreamRejected) as refused:
        await save(xseries_client,
            new_sale("SAVED", [tshirt_line()], [
                {"retailer_payment_type_id": LOYALTY, "amount": Decimal("39.51")}
            ])
        )  # fmt: skip
    assert refused.value.status == 400
    assert balance(xseries, TONY) == Decimal("39.50")


async def test_update_keeps_lines_and_payments(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    sale = await xseries_client.get_sale(JOHNNY_SALE)
    payload = sale_write_payload(sale)
    payload["register_sale_payments"].append(
        {"retailer_payment_type_id": LOYALTY, "amount": Decimal("10")}
    )
    updated = await save(xseries_client, payload)
    assert [line.id for line in updated.lines] == [line.id for line in sale.lines]
    assert updated.lines[0].loyalty_value == sale.lines[0].loyalty_value
    assert [p.amount for p in updated.payments] == [Decimal("5"), Decimal("10")]
    assert updated.status == "ONACCOUNT"
    assert balance(xseries, JOHNNY) == Decimal("2")


async def test_update_without_a_line_deletes_it(xseries_client: XSeriesClient) -> None:
    lines = [{**tshirt_line(), "status": "SAVED"}, {**tshirt_line(2), "status": "SAVED"}]
    sale = await save(xseries_client, new_sale("SAVED", lines))
    payload = sale_write_payload(sale)
    payload["register_sale_products"] = payload["register_sale_products"][:1]
    updated = await save(xseries_client, payload)
    assert [line.id for line in updated.lines] == [sale.lines[0].id]


async def test_a_confirmed_line_is_read_only(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    """The spec: a line CONFIRMED on a pending sale is read-only. Sent back changed, or
    left out, the sandbox refuses it (the strict reading) and nothing changes."""
    sale = await xseries_client.get_sale(JOHNNY_SALE)
    assert sale.lines[0].status == "CONFIRMED"
    rewritten = sale_write_payload(sale)
    rewritten["register_sale_products"][0]["loyalty_value"] = Decimal("0.43")
    with pytest.raises(UpstreamRejected) as changed:
        await save(xseries_client, rewritten)
    assert "CONFIRMED" in (changed.value.upstream_message or "")
    dropped = sale_write_payload(sale)
    dropped["register_sale_products"] = []
    with pytest.raises(UpstreamRejected) as removed:
        await save(xseries_client, dropped)
    assert "cannot be removed" in (removed.value.upstream_message or "")
    assert await xseries_client.get_sale(JOHNNY_SALE) == sale


async def test_state_and_attributes_are_kept_and_must_agree_with_the_status(
    xseries_client: XSeriesClient,
) -> None:
    sale = await xseries_client.get_sale(JOHNNY_SALE)
    assert (sale.state, sale.register_sale_attributes) == ("pending", ["onaccount"])
    stale = sale_write_payload(sale)
    stale["status"] = "ONACCOUNT_CLOSED"  # the state read ("pending") says otherwise
    with pytest.raises(UpstreamRejected):
        await save(xseries_client, stale)
    cash = PaymentWrite(CASH, Decimal("18"), datetime.now(UTC))
    closed = await save(xseries_client, payment_added(sale, cash, status="ONACCOUNT_CLOSED"))
    assert (closed.state, closed.register_sale_attributes) == ("closed", ["onaccount"])


async def test_missing_required_field_is_a_400_and_changes_nothing(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    line = tshirt_line()
    del line["tax_id"]
    with pytest.raises(UpstreamRejected) as rejected:
        await save(xseries_client, new_sale("CLOSED", [line]))
    assert rejected.value.status == 400 and "tax_id" in (rejected.value.upstream_message or "")
    assert xseries.get("/api/register_sales")["pagination"]["results"] == 2


async def test_adjustments_apply_once_per_session(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    session = str(uuid.uuid4())
    adjustments = [Adjustment(TONY, Decimal("10"), "welcome"), Adjustment(JOHNNY, Decimal("-2"))]
    first = await xseries_client.adjust_loyalty(session, adjustments)
    again = await xseries_client.adjust_loyalty(session, adjustments)
    assert first.outcome(TONY) == again.outcome(TONY) == AdjustmentApplied(Decimal("60"))
    assert first.outcome(JOHNNY) == AdjustmentApplied(Decimal("10"))
    assert balance(xseries, TONY) == Decimal("60") and balance(xseries, JOHNNY) == Decimal("10")


async def test_a_session_reused_with_other_items_is_a_session_conflict_sent_once(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    session = str(uuid.uuid4())
    await xseries_client.adjust_balance(session, Adjustment(TONY, Decimal("10")))
    with pytest.raises(SessionConflict) as conflict:
        await xseries_client.adjust_balance(session, Adjustment(TONY, Decimal("99")))
    assert conflict.value.status == 409 and not conflict.value.transient
    assert xseries.stats()["responses"]["POST /api/2026-07/loyalty/adjustments/bulk 409"] == 1
    assert balance(xseries, TONY) == Decimal("60")


async def test_adjustment_errors_are_reported_per_customer(xseries_client: XSeriesClient) -> None:
    result = await xseries_client.adjust_loyalty(
        str(uuid.uuid4()), [Adjustment(JOHNNY, Decimal("-1000")), Adjustment(TONY, Decimal("1"))]
    )
    assert isinstance(result.outcome(JOHNNY), AdjustmentRefused)
    assert result.outcome(TONY) == AdjustmentApplied(Decimal("51"))


async def test_one_customer_applied_gives_the_new_balance(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    outcome = await xseries_client.adjust_balance(str(uuid.uuid4()), Adjustment(JOHNNY, Decimal(3)))
    assert outcome == AdjustmentApplied(Decimal("15"))
    assert balance(xseries, JOHNNY) == Decimal("15")


async def test_a_207_for_our_customer_is_refused_for_this_customer(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    outcome = await xseries_client.adjust_balance(
        str(uuid.uuid4()), Adjustment(JOHNNY, Decimal("-12.01"))
    )
    assert isinstance(outcome, AdjustmentRefused) and outcome.error
    assert xseries.stats()["responses"] == {"POST /api/2026-07/loyalty/adjustments/bulk 207": 1}
    assert balance(xseries, JOHNNY) == Decimal("12")


async def test_a_400_is_a_rejection(xseries_client: XSeriesClient, xseries: SandboxHandle) -> None:
    with pytest.raises(UpstreamRejected) as rejected:
        await xseries_client.adjust_balance(str(uuid.uuid4()), Adjustment(TONY, Decimal(0)))
    assert rejected.value.status == 400 and not isinstance(rejected.value, SessionConflict)
    assert not rejected.value.transient
    assert balance(xseries, TONY) == Decimal("50")


async def test_a_403_is_not_permitted_at_once_and_never_resent(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.scopes("retailer:read customers:read customers:write sales:read sales:write")
    with pytest.raises(UpstreamForbidden) as refused:
        await xseries_client.adjust_balance(str(uuid.uuid4()), Adjustment(TONY, Decimal(5)))
    error = refused.value
    assert isinstance(error, Unauthorized) and not error.transient
    assert error.status == 403
    assert "loyalty.transaction.write" in error.message and "reconnect" in error.message
    assert xseries.stats()["responses"] == {"POST /api/2026-07/loyalty/adjustments/bulk 403": 1}
    assert balance(xseries, TONY) == Decimal("50")


async def test_a_403_on_any_call_is_not_permitted_not_unavailable(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.scopes("retailer:read")
    with pytest.raises(UpstreamForbidden) as refused:
        await xseries_client.get_customer(TONY)
    assert not refused.value.transient and not isinstance(refused.value, UpstreamUnavailable)
    assert xseries.count("GET /api/customers") == 1  # a GET is retried on 5xx, never on 403


async def test_can_write_loyalty_asks_without_moving_points(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    assert await xseries_client.can_write_loyalty() is True
    xseries.scopes("retailer:read customers:read")
    assert await xseries_client.can_write_loyalty() is False
    assert xseries.stats()["responses"] == {
        "POST /api/2026-07/loyalty/adjustments/bulk 400": 1,
        "POST /api/2026-07/loyalty/adjustments/bulk 403": 1,
    }
    assert balance(xseries, TONY) == Decimal("50") and balance(xseries, JOHNNY) == Decimal("12")


# Shapes the sandbox cannot produce, answered at the HTTP boundary.


Answering = Callable[[int, object], XSeriesClient]


@pytest.fixture
async def answering() -> AsyncIterator[Answering]:
    """A client whose POS answers every request with ``status`` and ``body``."""
    layers: list[HttpLayer] = []

    def client(status: int, body: object) -> XSeriesClient:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(status, content=dumps(body))

        layers.append(HttpLayer(policy=TEST_POLICY, transport=httpx.MockTransport(handler)))
        return XSeriesClient(
            layers[-1].upstream("X-Series", "http://xseries.test", BearerToken("t"))
        )

    yield client
    for layer in layers:
        await layer.aclose()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (207, {"applied": [], "errors": [{"customer_id": "someone-else", "error": "no"}]}),
        (200, {"applied": [{"customer_id": "someone-else", "balance": 1}], "errors": []}),
        (200, {}),
        (
            207,
            {
                "applied": [{"customer_id": TONY, "balance": 55}],
                "errors": [{"customer_id": TONY, "error": "refused"}],
            },
        ),
        (201, {"applied": [{"customer_id": TONY, "balance": 55}], "errors": []}),
        (200, {"applied": "all of them"}),
    ],
)
async def test_an_answer_that_does_not_say_is_transient_never_a_guess(
    answering: Answering, status: int, body: object
) -> None:
    client = answering(status, body)
    with pytest.raises(UpstreamShapeError) as unclear:
        await client.adjust_balance(str(uuid.uuid4()), Adjustment(TONY, Decimal(5)))
    assert unclear.value.transient


@pytest.mark.parametrize("words", ["insufficient loyalty balance", "", "OK", "applied"])
async def test_a_refusal_is_told_by_its_list_not_its_words(
    answering: Answering, words: str
) -> None:
    client = answering(207, {"applied": [], "errors": [{"customer_id": TONY, "error": words}]})
    outcome = await client.adjust_balance(str(uuid.uuid4()), Adjustment(TONY, Decimal(5)))
    assert outcome == AdjustmentRefused(words)


async def test_an_applied_answer_without_a_balance_is_applied(answering: Answering) -> None:
    client = answering(200, {"applied": [{"customer_id": TONY}], "errors": []})
    outcome = await client.adjust_balance(str(uuid.uuid4()), Adjustment(TONY, Decimal(5)))
    assert outcome == AdjustmentApplied(None)


# --------------------------------------------------------------------------- failures


async def test_wrong_token_is_an_auth_error(http_layer: HttpLayer, xseries: SandboxHandle) -> None:
    client = XSeriesClient(http_layer.upstream("X-Series", xseries.url, BearerToken("wrong")))
    with pytest.raises(UpstreamAuthError) as failure:
        await client.get_config()
    assert failure.value.status == 401
    assert "wrong" not in failure.value.message


async def test_429_on_a_get_is_retried_after_the_date(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.faults(status=429, fail_next=1, retry_after_s=1)
    config = await xseries_client.get_config()
    assert config.enable_loyalty
    assert xseries.stats()["responses"] == {"GET /api/config 429": 1, "GET /api/config 200": 1}


async def test_429_on_a_post_is_rate_limited_and_never_resent(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.faults(status=429, fail_next=1, retry_after_s=1)
    with pytest.raises(UpstreamRateLimited) as limited:
        await save(xseries_client, new_sale("CLOSED", [tshirt_line()]))
    assert limited.value.retry_after_s is not None and limited.value.retry_after_s <= 2
    assert xseries.count("POST /api/register_sales") == 1
    assert balance(xseries, TONY) == Decimal("50")


async def test_rate_budget_exhausted_waits_for_the_window(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    """The budget is spent after two calls: the third waits for the window to renew (it is
    within ``max_retry_after_s``) instead of being refused by the POS."""
    xseries.faults(rate_limit={"limit": 2, "window_s": 1})
    results = [await xseries_client.list_payment_types() for _ in range(3)]
    assert all(results)
    assert xseries.stats()["responses"] == {"GET /api/payment_types 200": 3}


async def test_retry_after_beyond_the_bound_is_not_waited(
    http_layer: HttpLayer, xseries: SandboxHandle
) -> None:
    impatient = HttpPolicy(max_retry_after_s=0.5, max_retries=3, backoff_base_s=0.01)
    client = XSeriesClient(
        http_layer.upstream("X-Series", xseries.url, BearerToken("t"), policy=impatient)
    )
    xseries.faults(status=429, fail_next=1, retry_after_s=30)
    with pytest.raises(UpstreamRateLimited) as limited:
        await client.get_config()
    assert limited.value.retry_after_s is not None and limited.value.retry_after_s > 25
    assert xseries.count("GET /api/config") == 1


async def test_503_on_a_get_is_retried_then_succeeds(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.faults(status=503, fail_next=2)
    assert (await xseries_client.get_config()).enable_loyalty
    assert xseries.count("GET /api/config") == 3


async def test_503_beyond_the_bound_is_upstream_unavailable(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.faults(status=503)
    with pytest.raises(UpstreamUnavailable) as failure:
        await xseries_client.get_config()
    assert failure.value.code == "UPSTREAM_UNAVAILABLE"
    assert xseries.count("GET /api/config") == TEST_POLICY.max_retries + 1


async def test_503_on_a_post_is_not_resent(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.faults(status=503, fail_next=1)
    with pytest.raises(UpstreamOutcomeUnknown):  # a 503 to a POST may hide a write
        await save(xseries_client, new_sale("CLOSED", [tshirt_line()]))
    assert xseries.count("POST /api/register_sales") == 1


async def test_timeouts_on_a_get_are_retried_within_the_bound(
    http_layer: HttpLayer, xseries: SandboxHandle
) -> None:
    quick = HttpPolicy(read_timeout_s=0.2, max_retries=2, backoff_base_s=0.01)
    client = XSeriesClient(
        http_layer.upstream("X-Series", xseries.url, BearerToken("t"), policy=quick)
    )
    xseries.faults(latency_ms=1000)
    with pytest.raises(UpstreamUnavailable) as failure:
        await client.get_config()
    assert "timeout" in failure.value.message
    assert xseries.count("GET /api/config") == 3


async def test_a_post_timeout_is_an_unknown_outcome(
    http_layer: HttpLayer, xseries: SandboxHandle
) -> None:
    quick = HttpPolicy(read_timeout_s=0.2, max_retries=2, backoff_base_s=0.01)
    client = XSeriesClient(
        http_layer.upstream("X-Series", xseries.url, BearerToken("t"), policy=quick)
    )
    xseries.faults(latency_ms=1000)
    with pytest.raises(UpstreamOutcomeUnknown) as failure:
        await save(client, new_sale("SAVED", [tshirt_line()]))
    assert failure.value.code.value == "OUTCOME_PENDING"
    assert xseries.count("POST /api/register_sales") == 1


async def test_refused_connection_is_unavailable(http_layer: HttpLayer) -> None:
    client = XSeriesClient(http_layer.upstream("X-Series", "http://127.0.0.1:9", BearerToken("t")))
    with pytest.raises(UpstreamUnavailable):
        await client.get_config()


async def test_identical_gets_in_flight_share_one_call(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    xseries.faults(latency_ms=200)
    configs = await asyncio.gather(*(xseries_client.get_config() for _ in range(10)))
    assert len({c.retailer_id for c in configs}) == 1
    assert xseries.count("GET /api/config") == 1


async def test_breaker_fails_fast_after_repeated_failures(
    http_layer: HttpLayer, xseries: SandboxHandle
) -> None:
    fragile = HttpPolicy(max_retries=0, breaker_failures=2, breaker_reset_s=60)
    client = XSeriesClient(
        http_layer.upstream("X-Series", xseries.url, BearerToken("t"), policy=fragile)
    )
    xseries.faults(status=503)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await client.get_config()
    with pytest.raises(UpstreamUnavailable) as paused:
        await client.get_config()
    assert "paused" in paused.value.message
    assert xseries.count("GET /api/config") == 2


async def test_products_and_sales_iterate_to_the_end(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    products = [p.id async for p in xseries_client.iter_products()]
    assert {TSHIRT, GOLD_WATCH} <= set(products)
    for _ in range(3):
        await save(xseries_client, new_sale("SAVED", [tshirt_line()]))
    sales = [s.id async for s in xseries_client.iter_sales()]
    assert len(sales) == 5 and JOHNNY_SALE in sales
    saved = [s.status async for s in xseries_client.iter_sales(statuses=["SAVED"])]
    assert saved == ["SAVED"] * 3


class RotatingToken:
    """Credentials that start stale and are renewed on the first 401 (like OAuth)."""

    def __init__(self, stale: str, fresh: str) -> None:
        self.token, self.fresh = stale, fresh

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def renew(self, rejected: object) -> bool:
        self.token = self.fresh
        return True


async def test_a_401_on_the_breakers_trial_does_not_jam_it(
    http_layer: HttpLayer, xseries: SandboxHandle
) -> None:
    from gateway.pos.http import CircuitBreaker

    now = [0.0]
    http_layer._breakers[xseries.url] = CircuitBreaker(
        threshold=2, reset_s=10, clock=lambda: now[0]
    )
    policy = HttpPolicy(max_retries=0)
    client = XSeriesClient(
        http_layer.upstream(
            "X-Series", xseries.url, RotatingToken("expired", XSERIES_TOKEN), policy=policy
        )
    )
    xseries.faults(status=503)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await client.get_config()
    xseries.clear_faults()
    now[0] = 11  # the POS is back; the breaker lets one trial through
    assert (await client.get_config()).enable_loyalty  # 401, renewed, retried: answered
    assert (await client.get_config()).enable_loyalty  # and the breaker is closed again


async def test_typed_sale_writes_create_and_add_a_payment(
    xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    now = datetime.now(UTC)
    source = str(uuid.uuid4())
    line = LineWrite(TSHIRT, Decimal(1), Decimal(20), Decimal(3), GST, Decimal(2))
    created = await xseries_client.create_sale(
        NewSale(source, REGISTER, USER, "SAVED", now, [line], [], customer_id=TONY)
    )
    assert created.source_id == source and created.status == "SAVED"
    assert await xseries_client.find_sale_by_source(source, now.replace(year=now.year - 1))
    payment = PaymentWrite(CASH, Decimal(23), now, register_id=REGISTER)
    paid = await xseries_client.add_payment(created, payment, status="CLOSED")
    assert paid.status == "CLOSED"
    assert [p.amount for p in paid.payments] == [Decimal(23)]
    assert paid.lines[0].loyalty_value == Decimal(2)  # as it was written
    assert [p.paid_at for p in paid.payments] == [now.replace(microsecond=0)]


async def test_closing_the_layer_ends_a_shared_get_its_caller_gave_up_on(
    http_layer: HttpLayer, xseries_client: XSeriesClient, xseries: SandboxHandle
) -> None:
    """Left running after shutdown, it would spend from the cache and open connections
    after both were closed (an unclosed socket, found by CI with warnings as errors)."""
    xseries.faults(latency_ms=3000)
    caller = asyncio.create_task(xseries_client.get_customer(TONY))
    await until(lambda: bool(http_layer.in_flight), what="the GET under way")
    shared = list(http_layer.in_flight.values())
    caller.cancel()  # the caller gives up; the shared call goes on for anyone else
    await asyncio.gather(caller, return_exceptions=True)
    assert not any(task.done() for task in shared)
    await http_layer.aclose()
    assert all(task.done() for task in shared)
