"""A customer's loyalty history: every movement of their balance, once, with a reason they
understand (docs/architecture.md, "History")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from gateway.domain.merchant import Pos


class ActivityKind(StrEnum):
    EARNED = "EARNED"
    REDEEMED = "REDEEMED"
    REVERSED = "REVERSED"  # what an order or sale earned, taken back (a refund, a void)
    RETURNED = "RETURNED"  # what was redeemed, given back (not applied, voided)
    ADJUSTED = "ADJUSTED"  # by hand, or the gateway's own corrections (rule 5, a top-up)


@dataclass(frozen=True)
class Movement:
    """What a points movement is, for the history: its kind and a customer's sentence."""

    kind: ActivityKind
    reason: str
    pos: Pos | None = None
    sale_id: str | None = None  # the POS's own id of the order or sale
    reward_id: str | None = None


@dataclass(frozen=True)
class Activity:
    id: str
    member_id: str
    occurred_at: datetime
    kind: ActivityKind
    points: Decimal  # signed: what the balance moved by
    balance_after: Decimal | None
    pos: Pos | None
    sale_id: str | None
    reward_id: str | None
    reason: str
    redemption_id: str | None = None  # when a redemption made the movement


# A redemption's movements are keyed by its id (and the step), so its history lines name it.
REDEMPTION_KEY = "redemption:"


def redemption_key(redemption_id: str, step: str = "") -> str:
    return f"{REDEMPTION_KEY}{redemption_id}" + (f":{step}" if step else "")


def redemption_of(key: str) -> str | None:
    """The redemption a movement's key names, if a redemption made it."""
    if not key.startswith(REDEMPTION_KEY):
        return None
    return key[len(REDEMPTION_KEY) :].split(":", 1)[0] or None
