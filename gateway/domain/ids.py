"""Global ids for the GraphQL API: opaque, stable, and naming the merchant, the kind and
the POS, so that an id from another merchant can be refused without asking any POS."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum

from gateway.domain.errors import NotFound, ValidationError
from gateway.domain.merchant import Pos

VERSION = "g1"
# Far above any id the gateway encodes (about 210 characters around a 100-character POS id).
MAX_LENGTH = 1024


class Kind(StrEnum):
    CUSTOMER = "Customer"
    SALE = "Sale"
    REWARD = "Reward"
    REDEMPTION = "Redemption"
    PAYMENT = "Payment"
    ACTIVITY = "LoyaltyActivity"


@dataclass(frozen=True)
class GlobalId:
    kind: Kind
    pos: Pos | None
    merchant_id: str
    local_id: str

    def encode(self) -> str:
        raw = "|".join([VERSION, self.kind.value, self.pos.value if self.pos else "-",
                        self.merchant_id, self.local_id])  # fmt: skip
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def encode(kind: Kind, pos: Pos | None, merchant_id: str, local_id: str) -> str:
    return GlobalId(kind, pos, merchant_id, local_id).encode()


def not_found(kind: Kind, value: str) -> NotFound:
    return NotFound(f"no {kind.value.lower()} with id {value[:80]!r}")


def decode(value: str, kind: Kind, merchant_id: str) -> GlobalId:
    """The id, if it is a well-formed id of ``kind`` belonging to ``merchant_id``.

    Anything else, malformed, of another kind or of another merchant, is NOT_FOUND, the
    same answer an unknown id gets, so ids reveal nothing across merchants.
    """
    gid = _parse(value)
    if gid is None or gid.kind is not kind or gid.merchant_id != merchant_id:
        raise not_found(kind, value)
    return gid


def peek(value: str, merchant_id: str, field: str = "id") -> GlobalId | None:
    """An id of any kind, for a lookup that does not know the kind (``node(id:)``): None
    when it is another merchant's, as if unknown. What was never an id of ours is the
    caller's mistake, a VALIDATION error naming ``field``, not a missing object."""
    gid = _parse(value)
    if gid is None:
        raise ValidationError(f"{field} is not an id this API gave out", field=field)
    return gid if gid.merchant_id == merchant_id else None


def _parse(value: str) -> GlobalId | None:
    if len(value) > MAX_LENGTH:  # bounded before any decoding work is spent on it
        return None
    try:
        padded = value + "=" * (-len(value) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        return None
    parts = raw.split("|", 4)
    if len(parts) != 5 or parts[0] != VERSION:
        return None
    _, kind, pos, owner, local_id = parts
    if not owner or not local_id or not local_id.isprintable():
        return None
    try:
        return GlobalId(Kind(kind), None if pos == "-" else Pos(pos), owner, local_id)
    except ValueError:
        return None
