"""The examples for frontend teams (``examples/``) stay true to the schema: each file is one
named operation the schema validates, its documented variables are values the operation
accepts, and every root query and mutation field has an example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from gateway.api.graphql.schema import build_schema
from gateway.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = sorted(EXAMPLES.rglob("*.graphql"))


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    graphql_schema: GraphQLSchema = build_schema(Settings())._schema
    return graphql_schema


def operation_of(path: Path) -> OperationDefinitionNode:
    definitions = parse(path.read_text()).definitions
    assert len(definitions) == 1, f"{path.name}: one operation per file"
    operation = definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    assert operation.name is not None, f"{path.name}: name the operation"
    return operation


def documented_variables(path: Path) -> dict[str, Any]:
    """The JSON in the header comment, from its first line that opens an object to the
    comment's end; ``Variables: none.`` is none."""
    comment = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        comment.append(line[1:].strip())
    if "Variables: none." in comment:
        return {}
    start = next((i for i, text in enumerate(comment) if text.startswith("{")), None)
    assert start is not None, f"{path.name}: document the variables in the header comment"
    variables: dict[str, Any] = json.loads(" ".join(comment[start:]))
    return variables


def test_there_are_examples() -> None:
    assert len(FILES) >= 11


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_each_example_validates_against_the_schema(schema: GraphQLSchema, path: Path) -> None:
    errors = validate(schema, parse(path.read_text()))
    assert not errors, [error.message for error in errors]
    operation = operation_of(path)
    folder = {OperationType.QUERY: "queries", OperationType.MUTATION: "mutations"}
    assert path.parent.name == folder[operation.operation]


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_each_examples_variables_are_accepted(schema: GraphQLSchema, path: Path) -> None:
    operation = operation_of(path)
    variables = documented_variables(path)
    definitions = operation.variable_definitions or ()
    assert set(variables) <= {d.variable.name.value for d in definitions}, path.name
    coerced = get_variable_values(schema, definitions, variables)
    assert not isinstance(coerced, list), [error.message for error in coerced]


def test_every_root_field_has_an_example(schema: GraphQLSchema) -> None:
    covered: set[tuple[OperationType, str]] = set()
    for path in FILES:
        operation = operation_of(path)
        for selection in operation.selection_set.selections:
            assert isinstance(selection, FieldNode)
            covered.add((operation.operation, selection.name.value))
    assert schema.query_type is not None and schema.mutation_type is not None
    roots = {(OperationType.QUERY, name) for name in schema.query_type.fields} | {
        (OperationType.MUTATION, name) for name in schema.mutation_type.fields
    }
    assert roots - covered == set(), "root fields without an example in examples/"
