"""Who may call, what they may see, and the guard rails around the schema."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.api.graphql.schema import CACHE_SIZE
from gateway.app import create_app
from gateway.domain.ids import Kind
from gateway.runtime import Runtime
from gateway.settings import Environment
from gateway.store.api_keys import revoke_api_key
from tests.api.test_graphql_sales import PAY, create
from tests.demo_ids import JOHNNY, JOHNNY_SALE
from tests.gateways import Gateway, make_gateway
from tests.support import SandboxHandle


async def test_no_key_or_a_wrong_key_is_401_json(gateway: Gateway) -> None:
    missing = await gateway.client.post("/graphql", json={"query": "{ merchant { name } }"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["errors"][0]["extensions"]["code"] == "UNAUTHORIZED"
    wrong = await gateway.post("{ merchant { name } }", key="gwk_wrong")
    assert wrong.status_code == 401
    basic = await gateway.client.post(
        "/graphql", json={"query": "{ merchant { name } }"}, headers={"Authorization": "Basic eDp5"}
    )
    assert basic.status_code == 401


async def test_a_revoked_key_stops_working(gateway: Gateway) -> None:
    async with gateway.runtime.db.transaction() as session:
        await revoke_api_key(session, gateway.key)
    fresh_app = create_app(runtime=gateway.runtime)  # a process whose key cache is cold
    transport = httpx.ASGITransport(app=fresh_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.post(
            "/graphql",
            json={"query": "{ merchant { name } }"},
            headers={"Authorization": f"Bearer {gateway.key}"},
        )
    assert response.status_code == 401
    assert "revoked or unknown" in response.text


async def test_another_merchants_ids_are_not_found(
    gateway: Gateway, xseries: SandboxHandle
) -> None:
    other = await make_gateway(gateway.runtime, xseries, "Wayne Enterprises")
    try:
        johnny = gateway.id(Kind.CUSTOMER, JOHNNY)
        seen = await other.data("query($id: ID!) { customer(id: $id) { id } }", {"id": johnny})
        assert seen["customer"] is None
        own = await gateway.data("query($id: ID!) { customer(id: $id) { id } }", {"id": johnny})
        assert own["customer"]["id"] == johnny
        sale = gateway.id(Kind.SALE, JOHNNY_SALE)
        paid = await other.data(
            PAY, {"input": {"idempotencyKey": "x", "saleId": sale, "amount": "1"}}
        )
        assert paid["payWithLoyalty"]["code"] == "NOT_FOUND"
        assert xseries.count("POST /api/register_sales") == 0
        created = await create(other, customer=None)
        assert created["__typename"] == "CreateSaleSuccess"
        foreign = await other.data(
            "query($id: ID!) { sale(id: $id) { id } }", {"id": gateway.id(Kind.SALE, JOHNNY_SALE)}
        )
        assert foreign["sale"] is None
    finally:
        await other.client.aclose()


async def test_idempotency_keys_are_per_merchant(gateway: Gateway, xseries: SandboxHandle) -> None:
    other = await make_gateway(gateway.runtime, xseries, "Wayne Enterprises")
    try:
        first = await create(gateway, key="shared-key")
        second = await create(other, customer=None, key="shared-key")
        assert first["__typename"] == second["__typename"] == "CreateSaleSuccess"
        assert first["sale"]["posId"] != second["sale"]["posId"]
    finally:
        await other.client.aclose()


async def test_graphiql_is_served_in_development_only(runtime: Runtime) -> None:
    for environment, served in ((Environment.DEVELOPMENT, True), (Environment.TEST, False)):
        app = create_app(
            runtime=Runtime(runtime.settings.model_copy(update={"environment": environment}))
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            page = await client.get("/graphql", headers={"Accept": "text/html"})
        await app.state.runtime.aclose()
        assert (page.status_code == 200 and "graphiql" in page.text.lower()) is served


async def test_production_has_no_ide_no_introspection_and_masks_faults(
    runtime: Runtime, xseries: SandboxHandle
) -> None:
    production = Runtime(
        runtime.settings.model_copy(update={"environment": Environment.PRODUCTION})
    )
    try:
        gw = await make_gateway(production, xseries, "Prod")
        page = await gw.client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code != 200 or "graphiql" not in page.text.lower()
        introspection = await gw.post("{ __schema { types { name } } }")
        assert "errors" in introspection.json()
        assert (await gw.data("{ merchant { name } }"))["merchant"]["name"] == "Prod"
        xseries.faults(status=503)
        coded = await gw.post('{ customers(search: "x") { id } }')
        assert coded.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        await gw.client.aclose()
    finally:
        await production.aclose()


async def test_depth_and_alias_limits(gateway: Gateway) -> None:
    nested = "id"
    for _ in range(6):
        nested = f"sales {{ customer {{ {nested} }} }}"
    deep = f'{{ customers(search: "x") {{ {nested} }} }}'
    too_deep = await gateway.post(deep)
    assert "exceeds maximum operation depth" in too_deep.text
    aliases = " ".join(f"m{n}: merchant {{ name }}" for n in range(40))
    too_many = await gateway.post(f"{{ {aliases} }}")
    assert "aliases" in too_many.text.lower()


async def test_validation_is_cached_across_requests(gateway: Gateway) -> None:
    from strawberry.extensions.validation_cache import _get_validate_cache

    cache: Any = _get_validate_cache(CACHE_SIZE)  # an lru_cache, typed as a plain callable
    query = "{ merchant { name pointsLabel } }"
    await gateway.data(query)
    hits = cache.cache_info().hits
    for _ in range(3):
        await gateway.data(query)
    assert cache.cache_info().hits == hits + 3
