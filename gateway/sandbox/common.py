"""What the POS sandboxes share: Decimal JSON, fixture loading and the request-field readers.

Only logic that is truly the same in every sandbox lives here. Where the simulated APIs differ
(the shape of an error body, whether a number may arrive as a string, how ids look), the caller
says so with a parameter: each sandbox stays as strict as the API it plays.

Money is ``Decimal`` from the request bytes to the response bytes (``parse_float=Decimal`` in,
``json_default`` out), because a float anywhere would make balances and totals drift. Nothing
here imports from ``gateway`` outside ``gateway.sandbox``.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = [
    "ZERO",
    "ApiResponse",
    "FieldReader",
    "FixtureError",
    "Handler",
    "Invalid",
    "bearer_token",
    "decimal_sum",
    "dumps",
    "field_name",
    "fixture_data",
    "fixture_records",
    "guarded",
    "json_default",
    "json_object",
    "parse_json",
    "parse_utc",
    "plain",
    "read_fixtures",
    "same_secret",
    "server_error",
]

ZERO = Decimal(0)

Id = TypeVar("Id")
E = TypeVar("E", bound=Exception)

Handler = Callable[[Request], Awaitable[Response]]

Invalid = Callable[[str, str], Exception]
"""A sandbox's 400 error for a field and its problem, e.g. ``("quantity", "must be a number")``."""


class FixtureError(ValueError):
    """Fixtures that cannot be loaded; the message says which file, key and item."""


# -- JSON: Decimal in, Decimal out -------------------------------------------------------------


def json_default(value: object) -> object:
    """The one money serializer: an integral Decimal is an int, any other its shortest float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a valid JSON number")


def parse_json(body: bytes | str) -> Any:
    return json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)


def dumps(content: Any) -> bytes:
    return json.dumps(
        content, default=json_default, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


class ApiResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_object(
    body: bytes,
    *,
    invalid_json: Callable[[str], Exception],
    not_an_object: Callable[[], Exception],
) -> dict[str, Any]:
    """A request body as a JSON object; the sandbox words the two errors its API answers."""
    try:
        data = parse_json(body)
    except (ValueError, RecursionError) as exc:
        raise invalid_json(str(exc)) from None
    if not isinstance(data, dict):
        raise not_an_object()
    return data


def guarded(
    handler: Handler,
    check: Callable[[Request], None],
    error: type[E],
    render: Callable[[E], Response],
) -> Handler:
    """``handler`` behind ``check``; the sandbox's ``error``, from either, becomes its body."""

    async def endpoint(request: Request) -> Response:
        try:
            check(request)
            return await handler(request)
        except error as exc:
            return render(exc)

    return endpoint


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for any other header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def same_secret(given: str, expected: str) -> bool:
    """Compares in constant time, so a wrong token's timing tells nothing of the right one."""
    return secrets.compare_digest(given.encode(), expected.encode())


async def server_error(request: Request, exc: Exception) -> Response:
    return ApiResponse({"error": "Internal Server Error"}, status_code=500)


# -- fixtures ----------------------------------------------------------------------------------


def plain(value: object, where: str) -> Any:
    """A deep copy of fixtures with floats made Decimal, so reset never shares or drifts."""
    if isinstance(value, Mapping):
        return {str(key): plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FixtureError(f"{where} is not a finite number")
        return Decimal(repr(value))
    if value is None or isinstance(value, str | int | Decimal):
        return value
    raise FixtureError(f"{where} has an unsupported type {type(value).__name__}")


def fixture_data(fixtures: object, keys: frozenset[str]) -> dict[str, Any]:
    """A private copy of a fixtures object (see ``plain``) whose keys are all in ``keys``."""
    if not isinstance(fixtures, Mapping):
        raise FixtureError("fixtures must be a JSON object")
    data: dict[str, Any] = plain(fixtures, "fixtures")
    unknown = set(data) - keys
    if unknown:
        raise FixtureError(f"unknown fixture keys: {', '.join(sorted(unknown))}")
    return data


def fixture_records(
    data: Mapping[str, Any], key: str, valid_id: Callable[[object], TypeGuard[Id]], ids: str
) -> dict[Id, dict[str, Any]]:
    """The array ``data[key]`` by id; ``valid_id`` is the sandbox's id rule, ``ids`` its words."""
    items = data.get(key)
    if items is None:
        return {}
    if not isinstance(items, list):
        raise FixtureError(f"{key} must be an array")
    result: dict[Id, dict[str, Any]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not valid_id(item.get("id")):
            raise FixtureError(f"{key}[{i}] must be an object with {ids}")
        item_id: Id = item["id"]
        if item_id in result:
            raise FixtureError(f"{key}[{i}] repeats the id {item_id!r}")
        result[item_id] = item
    return result


def read_fixtures(path: str | Path, check: Callable[[object], object]) -> dict[str, Any]:
    """Read a fixture file and ``check`` it (by building a state) now, so that a bad file fails
    at startup with its name."""
    path = Path(path)
    try:
        data = parse_json(path.read_bytes())
    except OSError as exc:
        raise FixtureError(f"cannot read fixtures {path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise FixtureError(f"fixtures {path} are not valid JSON: {exc}") from None
    try:
        check(data)
    except FixtureError as exc:
        raise FixtureError(f"fixtures {path}: {exc}") from None
    assert isinstance(data, dict)
    return data


# -- field readers: each raises the sandbox's 400 naming the field ------------------------------


def field_name(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


class FieldReader:
    """The request-field readers, bound to one sandbox's 400 error and its rule for numbers.

    ``numeric_strings``: whether a number may also arrive as a numeric string ("12.50").
    ``limit``: when set, a number's magnitude must stay below it.
    """

    def __init__(
        self, invalid: Invalid, *, numeric_strings: bool, limit: Decimal | None = None
    ) -> None:
        self.invalid = invalid
        self.numeric_strings = numeric_strings
        self.limit = limit

    def text(self, value: object, field: str) -> str | None:
        """A string, or None for null."""
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.invalid(field, "must be a string")
        return value

    def number(self, value: object, field: str) -> Decimal:
        """A finite number; never a bool."""
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise self.invalid(field, "must be a number")
        if isinstance(value, str) and not self.numeric_strings:
            raise self.invalid(field, "must be a number")
        try:
            number = Decimal(value)
        except (InvalidOperation, ValueError):
            raise self.invalid(field, "must be a number") from None
        if not number.is_finite():
            raise self.invalid(field, "must be a finite number")
        if self.limit is not None and abs(number) >= self.limit:
            raise self.invalid(field, f"must be less than {self.limit}")
        return number

    def optional_number(self, data: Mapping[str, Any], key: str, where: str = "") -> Decimal | None:
        value = data.get(key)
        return None if value is None else self.number(value, field_name(where, key))

    def required_number(self, data: Mapping[str, Any], key: str, where: str = "") -> Decimal:
        value = self.optional_number(data, key, where)
        if value is None:
            raise self.invalid(field_name(where, key), "is required")
        return value


# -- values ------------------------------------------------------------------------------------


def parse_utc(value: str) -> datetime | None:
    """An ISO 8601 date-time (so also "YYYY-MM-DD HH:MM:SS") in UTC; a naive one is UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def decimal_sum(values: Iterable[Decimal]) -> Decimal:
    total = ZERO
    for value in values:
        total += value
    return total
