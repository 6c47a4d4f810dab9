"""Per-request context: the caller's merchant scope and request-local loaders."""

from __future__ import annotations

from dataclasses import dataclass, field

from strawberry.dataloader import DataLoader

from gateway.domain.customers import Customer
from gateway.domain.errors import GatewayError
from gateway.services import customers
from gateway.services.context import Scope


@dataclass
class Context:
    scope: Scope
    customers: DataLoader[str, Customer | None] = field(init=False)

    def __post_init__(self) -> None:
        self.customers = DataLoader(load_fn=self._load_customers)

    async def _load_customers(self, pos_ids: list[str]) -> list[Customer | None]:
        """X-Series customers by id, each asked once per request however often referenced."""
        found: list[Customer | None] = []
        for pos_id in pos_ids:
            try:
                found.append(await customers.get_xseries_customer(self.scope, pos_id))
            except GatewayError as error:
                if error.code != "NOT_FOUND":
                    raise
                found.append(None)
        return found
