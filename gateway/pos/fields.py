"""Tolerant readers for POS payloads, which mix types freely: flags as true, 1 or "1";
numbers as strings like "0.00000"; ids as integers or strings; several date formats."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, BeforeValidator, ValidationError

from gateway.domain.money import to_decimal
from gateway.pos.errors import UpstreamShapeError

M = TypeVar("M", bound=BaseModel)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None or value == "":
        return False
    if isinstance(value, int | Decimal):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
    raise ValueError(f"not a flag: {value!r}")


def decimal(value: Any) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    return to_decimal(value)


def _optional_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return to_decimal(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _optional_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def parse_timestamp(value: Any) -> datetime | None:
    """X-Series writes "2026-11-21 10:00:00" (UTC), "...T10:00:00Z" or "...+00:00"."""
    if value is None or value == "" or str(value).startswith("0000"):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


Flag = Annotated[bool, BeforeValidator(_flag)]
Amount = Annotated[Decimal, BeforeValidator(decimal)]
OptionalAmount = Annotated[Decimal | None, BeforeValidator(_optional_decimal)]
Text = Annotated[str, BeforeValidator(_text)]
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
Timestamp = Annotated[datetime | None, BeforeValidator(parse_timestamp)]


def parse(model: type[M], data: Any, pos: str) -> M:
    """A 2xx body as ``model``; a body we cannot read is the POS's fault, said clearly."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UpstreamShapeError(
            f"{pos} sent a {model.__name__} we cannot read: {exc.errors()[0]['msg']}", pos=pos
        ) from None


def parse_list(model: type[M], data: Any, pos: str) -> list[M]:
    if not isinstance(data, list):
        raise UpstreamShapeError(f"{pos} sent {type(data).__name__} where a list belongs", pos=pos)
    return [parse(model, item, pos) for item in data]


def field(data: Any, key: str, pos: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise UpstreamShapeError(f"{pos} answered without '{key}'", pos=pos)
    return data[key]


def segment(value: str) -> str:
    """An id as one path segment: a forged id cannot reach another path."""
    return quote(value, safe="")
