"""What a use case runs with: the process's services and the merchant it acts for."""

from __future__ import annotations

from dataclasses import dataclass

from gateway import telemetry
from gateway.cache import Memo
from gateway.domain.merchant import Merchant
from gateway.pos.kounta.client import KountaClient
from gateway.pos.xseries import XSeriesClient
from gateway.runtime import Runtime
from gateway.services.clients import PosClients
from gateway.services.idempotency import Idempotency
from gateway.store.idempotency import IdempotencyStore
from gateway.store.leases import Leases


class Services:
    """Built once per process on top of the runtime; shared by every entry point."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.leases = Leases(runtime.db, ttl_s=runtime.settings.lease_s)
        # The merchant behind a key or a company, catalogues: see gateway/cache.py.
        self.memo = Memo()
        self.clients = PosClients(runtime, self.leases, self.memo)
        self.idempotency = Idempotency(IdempotencyStore(runtime.db, self.leases), self.leases)

    def scope(self, merchant: Merchant) -> Scope:
        """The merchant's view; a request it is made in is then known to act for it (its
        log lines say which merchant, ``gateway/telemetry.py``)."""
        telemetry.note_merchant(merchant.id)
        return Scope(self, merchant)


@dataclass(frozen=True)
class Scope:
    """One merchant's view of the services: everything it touches belongs to it."""

    services: Services
    merchant: Merchant

    @property
    def runtime(self) -> Runtime:
        return self.services.runtime

    async def xseries(self) -> XSeriesClient:
        return await self.services.clients.xseries(self.merchant)

    def kounta(self) -> KountaClient:
        return self.services.clients.kounta(self.merchant)
