"""Page cursors for a customer's history: opaque, and signed for the list they page.

A cursor is the last row's place in the order (its time, its id); the page after it holds
what is older, so rows arriving meanwhile (newer) never shift a page already read. The
HMAC binds it to its merchant and member: a cursor edited by hand, cut short, or taken from
another customer's list is refused as a VALIDATION error naming the field, never read as
some other place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime

from gateway.domain.errors import ValidationError

VERSION = "c1"
MAX_LENGTH = 512  # far above any cursor minted (about 130 characters)
SIGNATURE_BYTES = 16


def encode(key: bytes, owner: str, at: datetime, row_id: str) -> str:
    payload = _b64(json.dumps([VERSION, at.isoformat(), row_id], separators=(",", ":")).encode())
    return f"{payload}.{_b64(_sign(key, owner, payload))}"


def decode(
    key: bytes,
    owner: str,
    cursor: str,
    field: str = "after",
    *,
    previous: Sequence[bytes] = (),
) -> tuple[datetime, str]:
    """The place ``cursor`` names in ``owner``'s list, if it was minted for that list (with
    ``key``, or one of the ``previous`` keys: a page read before a key rotation)."""
    refused = ValidationError(
        f"{field} is not a cursor of this list: pass an endCursor as it was given", field=field
    )
    if len(cursor) > MAX_LENGTH:
        raise refused
    payload, _, signature = cursor.partition(".")
    presented = signature.encode(errors="surrogatepass")
    if not any(
        hmac.compare_digest(_b64(_sign(signer, owner, payload)).encode(), presented)
        for signer in (key, *previous)
    ):
        raise refused
    try:
        version, at, row_id = json.loads(_unb64(payload))
        when = datetime.fromisoformat(at)
    except (ValueError, TypeError, binascii.Error):
        raise refused from None
    if version != VERSION or not isinstance(row_id, str) or when.tzinfo is None:
        raise refused
    return when, row_id


def _sign(key: bytes, owner: str, payload: str) -> bytes:
    message = f"{owner}\x00{payload}".encode(errors="surrogatepass")
    return hmac.new(key, message, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
