"""Extract, verbatim, the official X-Series 0.9 definitions our contract tests validate against.

The repository keeps only this extract (see NOTICE), not the whole specification. Re-run it when
the official file changes; the drift-guard test (run with ``XSERIES_0_9_SPEC`` naming the
file) fails until then:

    uv run python tests/sandbox/contracts/extract_definitions.py path/to/xseries-api-0.9.swagger.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Where the official file is, on this machine: it is not part of the repository.
SPEC_ENV = "XSERIES_0_9_SPEC"
OUTPUT = Path(__file__).with_name("xseries_0_9_definitions.json")
ROOTS = (
    "CustomerCollection",
    "CustomerResponse",
    "ProductCollection",
    "PaymentTypeCollection",
    "RegisterSaleCollection",
    "RegisterSaleResponse",
)
_PREFIX = "#/definitions/"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"][len(_PREFIX) :]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The roots and every definition they reference, transitively, in the spec's own order."""
    definitions = spec["definitions"]
    wanted: set[str] = set()
    pending = list(ROOTS)
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            pending.extend(_refs(definitions[name]))
    return {"definitions": {name: body for name, body in definitions.items() if name in wanted}}


def official_spec() -> Path | None:
    named = os.environ.get(SPEC_ENV)
    return Path(named) if named else None


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit(f"usage: {argv[0]} path/to/xseries-api-0.9.swagger.json")
    spec_path = Path(argv[1])
    extracted = extract(json.loads(spec_path.read_text(encoding="utf-8")))
    OUTPUT.write_text(json.dumps(extracted, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(extracted['definitions'])} definitions)")


if __name__ == "__main__":
    main(sys.argv)
