"""JSON with exact decimals, both ways: Decimals are written as number text (never via
float), and non-integer numbers are read as Decimals.

Reading is also bounded, because the same reader takes what strangers send (every entry
point) and what a POS answers: the nesting depth is measured on the text, without
recursion, before the text is parsed, so ten thousand ``[`` are refused in a few
milliseconds instead of recursing until Python gives up; ``NaN`` and ``Infinity``, which
Python's parser takes and JSON does not have, are refused; and every refusal is a
``JSONError`` whose message can be shown to the sender as it is.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from itertools import accumulate
from typing import Any

import orjson

# For a POS's answers; entry points pass ``settings.max_json_depth`` instead.
DEFAULT_MAX_DEPTH = 64

# A complete JSON string (escapes included): brackets inside one do not nest anything.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JSONError(ValueError):
    """Why a text is not JSON we read, in words fit to show whoever sent it."""


def _default(value: object) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(body: object) -> bytes:
    return orjson.dumps(body, default=_default)


def nesting(text: str) -> int:
    """How deeply arrays and objects nest in ``text``, measured without recursion."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads(content: bytes | str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The JSON value in ``content`` (UTF-8 when bytes), or ``JSONError``."""
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONError("the JSON is not UTF-8 text") from None
    # Cheap first: no text with this few brackets can nest deeper than allowed.
    if content.count("[") + content.count("{") > max_depth and nesting(content) > max_depth:
        raise JSONError(f"the JSON is nested more than {max_depth} levels deep")
    try:
        return json.loads(content, parse_float=Decimal, parse_constant=_not_a_number)
    except json.JSONDecodeError as error:
        raise JSONError(
            f"the JSON is not valid (line {error.lineno}, column {error.colno})"
        ) from None
    except JSONError:
        raise
    except ValueError:  # an integer longer than Python converts (sys.int_info)
        raise JSONError("the JSON holds a number too long to read") from None


def _not_a_number(name: str) -> Any:
    raise JSONError(f"{name} is not a JSON number")
