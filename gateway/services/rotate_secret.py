"""Moving every stored secret to the current GATEWAY_SECRET_KEY, without downtime
(docs/operations.md, "Rotating GATEWAY_SECRET_KEY").

Run after every process reads with the new key (current) and the old one (previous): then
nothing is ever written under the old key again, and this pass leaves nothing that needs it.
It is idempotent: a second run finds everything current and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.runtime import Runtime
from gateway.store import rotation
from gateway.store.crypto import UndecryptableToken


@dataclass
class RotationReport:
    connections: int = 0
    rotated: int = 0
    current: int = 0
    # POS accounts holding a secret no configured key reads (merchant, pos).
    unreadable: list[tuple[str, str]] = field(default_factory=list)


async def rotate_secret(
    runtime: Runtime,
    progress: Callable[[rotation.Credential, rotation.Rekeyed | None], None] = lambda _c, _r: None,
) -> RotationReport:
    """Re-encrypt each POS account's secrets, one short transaction each; ``progress`` is
    told of every account (None: it holds a secret no configured key reads)."""
    cipher = runtime.cipher
    async with runtime.db.read() as session:
        found = await rotation.credentials(session)
    report = RotationReport(connections=len(found))
    for credential in found:
        done: rotation.Rekeyed | None = None
        try:
            while done is None:  # the row changed under us (a token refresh): read it again
                async with runtime.db.read() as session:
                    read = await rotation.secrets(session, credential.id)
                if read is None:  # disconnected and deleted meanwhile: nothing stored
                    done = rotation.Rekeyed(0, 0)
                    break
                async with runtime.db.transaction() as session:
                    done = await rotation.rekey(session, cipher, credential.id, read)
        except UndecryptableToken:
            report.unreadable.append((credential.merchant, credential.pos))
        else:
            report.rotated += done.rotated
            report.current += done.current
        progress(credential, done)
    return report
