"""JSON with exact decimals, both ways: Decimals are written as number text (never via
float), and non-integer numbers are read as Decimals."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson


def _default(value: object) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(body: object) -> bytes:
    return orjson.dumps(body, default=_default)


def loads(content: bytes | str) -> Any:
    return json.loads(content, parse_float=Decimal)
