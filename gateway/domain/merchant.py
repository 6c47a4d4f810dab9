"""Who the gateway works for: a merchant, the POS accounts it has, where its points live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from gateway.domain.errors import PosDisconnected


class Pos(StrEnum):
    XSERIES = "XSERIES"
    KOUNTA = "KOUNTA"

    @property
    def label(self) -> str:
        return "X-Series" if self is Pos.XSERIES else "Kounta"


class PointsSource(StrEnum):
    XSERIES = "XSERIES"
    LEDGER = "LEDGER"


class VoidPolicy(StrEnum):
    """What happens to points redeemed on an order or sale that is then voided, rejected or
    deleted (docs/architecture.md, "The life of a sale"): given back, or kept spent."""

    RETURN = "RETURN"
    KEEP = "KEEP"


class ConnectionStatus(StrEnum):
    CONNECTED = "CONNECTED"
    # The merchant must connect again: a refresh refused, a token revoked, a scope missing.
    RECONNECT_NEEDED = "RECONNECT_NEEDED"
    DISCONNECTED = "DISCONNECTED"


@dataclass(frozen=True)
class PosAccount:
    """A POS account's address, non-secret settings and the state of its connection
    (tokens live encrypted in the store)."""

    pos: Pos
    base_url: str
    account_id: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    status: ConnectionStatus = ConnectionStatus.CONNECTED
    status_reason: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Merchant:
    id: str
    name: str
    points_source: PointsSource
    points_label: str
    accounts: Mapping[Pos, PosAccount] = field(default_factory=dict)
    # Earning ratio where no X-Series config says it (LEDGER merchants).
    loyalty_ratio: Decimal | None = None
    redeemed_points_on_void: VoidPolicy = VoidPolicy.RETURN

    @property
    def pos_systems(self) -> list[Pos]:
        """The POS the merchant uses, connected or waiting to be reconnected."""
        return [
            pos
            for pos in Pos
            if pos in self.accounts
            and self.accounts[pos].status is not ConnectionStatus.DISCONNECTED
        ]

    def has(self, pos: Pos) -> bool:
        """Whether the gateway can work with that POS now."""
        return pos in self.accounts and self.accounts[pos].status is ConnectionStatus.CONNECTED

    def account(self, pos: Pos) -> PosAccount:
        """The connected account; anything else is POS_DISCONNECTED, saying what to do."""
        account = self.accounts.get(pos)
        if account is None or account.status is ConnectionStatus.DISCONNECTED:
            raise PosDisconnected(f"this merchant's {pos.label} is not connected")
        if account.status is ConnectionStatus.RECONNECT_NEEDED:
            why = f" ({account.status_reason})" if account.status_reason else ""
            raise PosDisconnected(
                f"this merchant's {pos.label} must be connected again{why}: use the connect page"
            )
        return account
