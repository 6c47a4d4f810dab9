"""Per-request context: the caller's merchant scope and request-local loaders."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from strawberry.dataloader import DataLoader

from gateway.domain.customers import Customer
from gateway.domain.errors import NotFound
from gateway.domain.merchant import Pos
from gateway.services import customers
from gateway.services.context import Scope


@dataclass
class Context:
    scope: Scope
    customers: DataLoader[tuple[Pos, str], Customer | None] = field(init=False)

    def __post_init__(self) -> None:
        self.customers = DataLoader(load_fn=self._load_customers)

    async def _load_customers(self, keys: list[tuple[Pos, str]]) -> list[Customer | None]:
        """Customers by POS and id, each asked once per request however often referenced."""
        return list(await asyncio.gather(*(self._customer(pos, pos_id) for pos, pos_id in keys)))

    async def _customer(self, pos: Pos, pos_id: str) -> Customer | None:
        try:
            if pos is Pos.KOUNTA:
                kounta = await customers.get_kounta_customer(self.scope, pos_id)
                return await customers.kounta_view(self.scope, kounta)
            return await customers.get_xseries_customer(self.scope, pos_id)
        except NotFound:
            return None
