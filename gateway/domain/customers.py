"""A loyalty member as the gateway shows it, whichever POS it comes from."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gateway.domain.merchant import Pos


@dataclass(frozen=True)
class Customer:
    pos: Pos
    pos_id: str
    first_name: str
    last_name: str | None
    email: str | None
    loyalty_enabled: bool
    balance: Decimal
    group_id: str | None = None
    code: str | None = None

    @property
    def display_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)
