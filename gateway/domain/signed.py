"""Values handed out in URLs (a connect link, an OAuth state) carry an HMAC, so a forged or
altered one is told apart before anything is looked up."""

from __future__ import annotations

import base64
import hashlib
import hmac


def same_secret(presented: str, expected: str) -> bool:
    """Compare secrets in constant time (an attacker learns nothing from the timing)."""
    return hmac.compare_digest(presented.encode(), expected.encode())


def sign(key: bytes, purpose: str, value: str) -> str:
    return f"{value}.{_mac(key, purpose, value)}"


def unsign(key: bytes, purpose: str, token: str) -> str | None:
    """The value, if ``token`` is exactly as signed for ``purpose``; else None."""
    value, _, mac = token.rpartition(".")
    if not value or not hmac.compare_digest(_mac(key, purpose, value), mac):
        return None
    return value


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()
