"""Which operation of a document runs: the one ``operationName`` names, or the only one.

graphql-core refuses a document of several operations without ``operationName``, but
Strawberry 0.341 fills the name in with the first operation's before graphql-core sees the
request, so the first one ran silently, whatever the caller meant. This extension restores
the rule after parsing, and says so too when ``operationName`` names no operation (which
Strawberry answered as a bare 400).
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension


class OneOperation(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        yield
        context = self.execution_context
        if context.graphql_document is None:
            return
        names = [
            definition.name.value if definition.name else None
            for definition in context.graphql_document.definitions
            if isinstance(definition, OperationDefinitionNode)
        ]
        # What the request said, before Strawberry's fallback (an InitVar, kept privately).
        given = context._provided_operation_name
        if given is None and len(names) > 1:
            raise GraphQLError(
                f"the document has {len(names)} operations: name the one to run in operationName"
            )
        if given is not None and given not in names:
            raise GraphQLError(f"operationName {given[:60]!r} names no operation in the document")
