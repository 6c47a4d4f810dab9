"""Signed reward offers: the ``{offer}`` in a Kounta ``redeem_url`` (README, "Kounta").

An offer names the merchant, the member, the reward and when it expires, and carries an
HMAC over all of it, so a forged or altered URL is refused. Each reward lookup mints new
offers (a random nonce), and an offer is its redemption's idempotency key: calling the
same URL twice redeems once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.domain.errors import ValidationError


@dataclass(frozen=True)
class Offer:
    merchant_id: str
    member_id: str
    reward_id: str
    expires_at: int  # unix seconds
    nonce: str


class OfferRefused(ValidationError):
    """A tampered, foreign or expired offer; the message is safe to show staff."""


def mint(key: bytes, merchant_id: str, member_id: str, reward_id: str, expires_at: int) -> str:
    offer = Offer(merchant_id, member_id, reward_id, expires_at, secrets.token_urlsafe(9))
    fields = [offer.merchant_id, offer.member_id, offer.reward_id, offer.expires_at, offer.nonce]
    payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
    return f"{payload}.{_b64(_sign(key, payload))}"


def verify(key: bytes, token: str, now: float, *, previous: Sequence[bytes] = ()) -> Offer:
    """The offer, if ``token`` is exactly as minted, with ``key`` or one of the ``previous``
    keys (an offer handed out before a key rotation). Base64's last character carries
    unused bits, so one signature has several spellings; only the canonical one is
    accepted, or a re-spelled URL would be a second idempotency key for the same offer."""
    payload, _, signature = token.partition(".")
    try:
        if not any(
            hmac.compare_digest(_b64(_sign(signer, payload)), signature)
            for signer in (key, *previous)
        ):
            raise OfferRefused("this reward link is not valid")
        merchant_id, member_id, reward_id, expires_at, nonce = json.loads(_unb64(payload))
    except (ValueError, TypeError, binascii.Error):
        raise OfferRefused("this reward link is not valid") from None
    offer = Offer(str(merchant_id), str(member_id), str(reward_id), int(expires_at), str(nonce))
    if now > offer.expires_at:
        raise OfferRefused("this reward offer has expired; look the customer up again")
    return offer


def _sign(key: bytes, payload: str) -> bytes:
    return hmac.new(key, payload.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
