"""The published contracts stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from gateway.api.graphql.schema import schema_sdl

ROOT = Path(__file__).resolve().parents[2]


def test_schema_graphql_is_current() -> None:
    published = (ROOT / "schema" / "schema.graphql").read_text()
    assert published == schema_sdl(), (
        "schema/schema.graphql is stale: run `uv run gateway export-schema`"
    )


def test_schema_keeps_the_published_contract_names() -> None:
    sdl = schema_sdl()
    for name in (
        "scalar Decimal",
        "enum ErrorCode",
        "interface Error",
        "type Merchant",
        "type Customer",
        "type Sale ",
        "type SaleLine",
        "type Payment ",
        "type LoyaltyPayment",
        "type LoyaltyQuote",
        "input SaleLineInput",
        "input CreateSaleInput",
        "input PayWithLoyaltyInput",
        "union CreateSaleResult",
        "union PayWithLoyaltyResult",
        "loyaltyQuote(input: LoyaltyQuoteInput!): LoyaltyQuote!",
        "createSale(input: CreateSaleInput!): CreateSaleResult!",
        "payWithLoyalty(input: PayWithLoyaltyInput!): PayWithLoyaltyResult!",
        "interface Node",
        "type Customer implements Node",
        "type Sale implements Node",
        "type Reward implements Node",
        "type Redemption implements Node",
        "type LoyaltyActivity implements Node",
        "node(id: ID!): Node",
        "activity(first: Int = 20, after: String = null): LoyaltyActivityConnection!",
        "type LoyaltyActivityConnection",
        "type PageInfo",
        "enum LoyaltyActivityKind",
        "scalar SignedDecimal",
        "adjustPoints(input: AdjustPointsInput!): AdjustPointsResult!",
    ):
        assert name in sdl, name


def test_kounta_openapi_is_current() -> None:
    from gateway.api.kounta_openapi import document_text

    published = (ROOT / "schema" / "kounta-adapters.openapi.json").read_text()
    assert published == document_text(), (
        "schema/kounta-adapters.openapi.json is stale: run `uv run gateway export-schema`"
    )


def test_export_schema_writes_both_contracts(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gateway.api.kounta_openapi import document_text
    from gateway.cli import app

    sdl, openapi = tmp_path / "s.graphql", tmp_path / "k.json"
    result = CliRunner().invoke(
        app, ["export-schema", f"--output={sdl}", f"--kounta-output={openapi}"]
    )
    assert result.exit_code == 0, result.output
    assert sdl.read_text() == schema_sdl()
    assert openapi.read_text() == document_text()
