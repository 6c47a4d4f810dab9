"""What can go wrong talking to a POS, as types the services catch.

Each is also one of the domain's errors (``gateway/domain/errors.py``), so a failure the
services do not handle still reaches the caller with the right code::

    UpstreamError                         a POS call without a usable answer (pos, status)
    ├── UpstreamNotFound        NotFound
    ├── UpstreamRejected        ValidationError   400/409/422: retrying cannot help
    │   └── SessionConflict                       409 from X-Series' loyalty adjustments: a
    │                                             session id reused with other items (ours)
    ├── UpstreamForbidden       Unauthorized      403: the token lacks a permission; the
    │                                             merchant must reconnect, retrying cannot help
    ├── UpstreamRateLimited     RateLimited       429, refused before anything was done
    ├── UpstreamUnavailable     Unavailable       5xx, timeouts, refused connections, open
    │   │                                         circuit: nothing was written
    │   ├── UpstreamShapeError                    a 2xx body we cannot read
    │   ├── UpstreamAuthError                     401 on the merchant's credentials
    │   └── UpstreamChanged                       changed since we read it: not written
    └── UpstreamOutcomeUnknown  OutcomePending    a write was sent and its answer lost:
                                                  it may land, even later
"""

from __future__ import annotations

from gateway.domain.errors import (
    GatewayError,
    NotFound,
    OutcomePending,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationError,
    whole_seconds,
)


class UpstreamError(GatewayError):
    """A POS call that did not give a usable answer."""

    def __init__(
        self,
        message: str,
        *,
        pos: str,
        status: int | None = None,
        upstream_message: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        if retry_after_s is not None:
            self.details["retry_after_s"] = str(whole_seconds(retry_after_s))
        self.pos = pos
        self.status = status
        self.upstream_message = upstream_message


class UpstreamNotFound(UpstreamError, NotFound):
    pass


class UpstreamRejected(UpstreamError, ValidationError):
    """The POS refused the request as invalid (400, 409, 422): retrying cannot help."""


class SessionConflict(UpstreamRejected):
    """X-Series' loyalty adjustments answered 409: this ``session_id`` was used before with
    other items. Our session ids are derived from the operation's key, so this is a bug of
    ours: nothing of this request was applied, and sending it again cannot help."""


class UpstreamForbidden(UpstreamError, Unauthorized):
    """403: the POS knows the token and refuses what it asked (a scope or permission the
    merchant did not grant). Not transient: it stays refused until the merchant reconnects
    the store with the permission, so it is neither retried nor waited out."""


class UpstreamRateLimited(UpstreamError, RateLimited):
    """429: the POS refused before doing anything, so even a write can be sent again."""


class UpstreamUnavailable(UpstreamError, Unavailable):
    """Nothing was written: a read failed, or a write never left or was refused whole."""


class UpstreamShapeError(UpstreamUnavailable):
    """The POS answered 2xx with a body we cannot read: treat as unavailable, log loudly."""


class UpstreamAuthError(UpstreamUnavailable):
    """The POS refused the merchant's stored credentials (401)."""


class UpstreamChanged(UpstreamUnavailable):
    """What we meant to write back changed at the POS after we read it (the register is
    editing the order): nothing was sent, so nothing of theirs was overwritten; reading
    again and retrying is safe."""


class UpstreamOutcomeUnknown(UpstreamError, OutcomePending):
    """A write reached the POS (or may have) and its answer was lost: a read timeout after
    sending, a dropped connection, a 5xx to a request that is not idempotent. It must be
    neither repeated nor undone before the POS is read back (docs/architecture.md)."""
