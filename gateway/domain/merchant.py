"""Who the gateway works for: a merchant, the POS accounts it has, where its points live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from gateway.domain.errors import NotFound


class Pos(StrEnum):
    XSERIES = "XSERIES"
    KOUNTA = "KOUNTA"

    @property
    def label(self) -> str:
        return "X-Series" if self is Pos.XSERIES else "Kounta"


class PointsSource(StrEnum):
    XSERIES = "XSERIES"
    LEDGER = "LEDGER"


@dataclass(frozen=True)
class PosAccount:
    """A POS account's address and non-secret settings (tokens live encrypted in the store)."""

    pos: Pos
    base_url: str
    account_id: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Merchant:
    id: str
    name: str
    points_source: PointsSource
    points_label: str
    accounts: Mapping[Pos, PosAccount] = field(default_factory=dict)
    # Earning ratio where no X-Series config says it (LEDGER merchants).
    loyalty_ratio: Decimal | None = None

    @property
    def pos_systems(self) -> list[Pos]:
        return [pos for pos in Pos if pos in self.accounts]

    def has(self, pos: Pos) -> bool:
        return pos in self.accounts

    def account(self, pos: Pos) -> PosAccount:
        try:
            return self.accounts[pos]
        except KeyError:
            raise NotFound(f"this merchant has no {pos.label} account connected") from None
