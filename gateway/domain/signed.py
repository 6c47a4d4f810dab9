"""Values handed out in URLs (a connect link, an OAuth state) carry an HMAC, so a forged or
altered one is told apart before anything is looked up."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence


def same_secret(presented: str, expected: str) -> bool:
    """Compare secrets in constant time (an attacker learns nothing from the timing)."""
    return hmac.compare_digest(presented.encode(), expected.encode())


def sign(key: bytes, purpose: str, value: str) -> str:
    return f"{value}.{_mac(key, purpose, value)}"


def unsign(key: bytes, purpose: str, token: str, *, previous: Sequence[bytes] = ()) -> str | None:
    """The value, if ``token`` is exactly as signed for ``purpose`` with ``key`` or one of
    the ``previous`` keys (a link handed out before a key rotation); else None."""
    value, _, mac = token.rpartition(".")
    if not value or not any(
        hmac.compare_digest(_mac(signer, purpose, value), mac) for signer in (key, *previous)
    ):
        return None
    return value


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()
