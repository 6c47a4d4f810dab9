"""The one JSON reader: exact decimals, bounded depth, and refusals fit to show a sender."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest

from gateway import jsonx
from gateway.jsonx import JSONError


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_depth_up_to_the_limit_is_read_and_one_more_is_refused() -> None:
    assert jsonx.loads(nested(32), max_depth=32) is not None
    with pytest.raises(JSONError, match="nested more than 32 levels deep"):
        jsonx.loads(nested(33), max_depth=32)
    objects = '{"a":' * 33 + "1" + "}" * 33
    with pytest.raises(JSONError, match="nested"):
        jsonx.loads(objects, max_depth=32)


def test_siblings_do_not_add_up_to_depth() -> None:
    wide = json.dumps([[[1]] for _ in range(5000)])
    assert len(jsonx.loads(wide, max_depth=3)) == 5000


def test_brackets_inside_strings_do_not_nest() -> None:
    text = json.dumps({"query": "{" * 1000 + '\\"[[[' + "}" * 1000, "list": [1]})
    assert jsonx.loads(text, max_depth=2)["list"] == [1]


@pytest.mark.parametrize(
    "body", [b"[" * 100_000, b'{"a":' * 100_000, nested(100_000).encode(), b'["\\"' + b"[" * 9999]
)
def test_ten_thousand_levels_are_refused_quickly_without_recursing(body: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(JSONError) as refused:
        jsonx.loads(body, max_depth=32)
    assert time.perf_counter() - started < 1.0
    assert "nested" in str(refused.value) or "not valid" in str(refused.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"a": NaN}', "NaN is not a JSON number"),
        ("[Infinity]", "Infinity is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ("{not json", "not valid (line 1, column 2)"),
        ("", "not valid (line 1, column 1)"),
        ("[" + "9" * 5000 + "]", "number too long"),
    ],
)
def test_what_is_not_json_is_said_in_our_words(text: str, says: str) -> None:
    with pytest.raises(JSONError) as refused:
        jsonx.loads(text)
    assert says in str(refused.value)
    assert "Expecting" not in str(refused.value)


def test_bytes_must_be_utf8() -> None:
    assert jsonx.loads('["é"]'.encode()) == ["é"]
    with pytest.raises(JSONError, match="UTF-8"):
        jsonx.loads(b'["\xed\xa0\x80"]')  # a surrogate encoded: not UTF-8


def test_numbers_stay_exact() -> None:
    assert jsonx.loads("[12.50, 0.1, 7]") == [Decimal("12.50"), Decimal("0.1"), 7]
    assert str(jsonx.loads("[1e3]")[0]) == "1E+3"  # the text is kept: callers can refuse it
    assert jsonx.dumps({"a": Decimal("12.50")}) == b'{"a":12.50}'
