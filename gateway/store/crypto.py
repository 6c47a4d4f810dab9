"""Secrets at rest: POS tokens encrypted (Fernet, key derived from GATEWAY_SECRET_KEY),
API keys stored only as a SHA-256 digest (they are long random strings, so a fast hash is
enough and lookups stay an index probe)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

API_KEY_PREFIX = "gwk_"


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, so no two uses ever share key material."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        secret
    )


class TokenCipher:
    def __init__(self, secret: bytes) -> None:
        key = derive_key(secret, "gateway/pos-credentials/v1")
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken:
            raise UndecryptableToken from None


class UndecryptableToken(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "a stored POS token cannot be decrypted: GATEWAY_SECRET_KEY differs from the key "
            "it was stored with"
        )


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_prefix(key: str) -> str:
    """The part of a key safe to show in listings, enough to tell keys apart."""
    return key[: len(API_KEY_PREFIX) + 6]
