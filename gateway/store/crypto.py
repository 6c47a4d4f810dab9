"""Secrets at rest: POS tokens encrypted (Fernet, key derived from GATEWAY_SECRET_KEY; keys
retired by a rotation still decrypt, docs/operations.md, "Rotating GATEWAY_SECRET_KEY"),
API keys stored only as a SHA-256 digest (they are long random strings, so a fast hash is
enough and lookups stay an index probe)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

API_KEY_PREFIX = "gwk_"


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, so no two uses ever share key material."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        secret
    )


def derive_keys(secrets: Sequence[bytes], purpose: str) -> tuple[bytes, ...]:
    """``derive_key`` for each master secret, in order (the current one first)."""
    return tuple(derive_key(secret, purpose) for secret in secrets)


class TokenCipher:
    """Encrypts with the current key only; decrypts with it or any previous key."""

    def __init__(self, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        self._current = _fernet(secret)
        self._any = MultiFernet([self._current, *(_fernet(key) for key in previous)])

    def encrypt(self, plaintext: str) -> bytes:
        return self._current.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._any.decrypt(ciphertext).decode()
        except InvalidToken:
            raise UndecryptableToken from None

    def is_current(self, ciphertext: bytes) -> bool:
        """Whether the current key reads it, i.e. rotating it would change nothing."""
        try:
            self._current.decrypt(ciphertext)
        except InvalidToken:
            return False
        return True

    def rotate(self, ciphertext: bytes) -> bytes:
        """The same secret encrypted under the current key."""
        try:
            return self._any.rotate(ciphertext)
        except InvalidToken:
            raise UndecryptableToken from None


def _fernet(secret: bytes) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(secret, "gateway/pos-credentials/v1")))


class UndecryptableToken(RuntimeError):
    def __init__(self) -> None:
        super().__init__(
            "a stored POS token cannot be decrypted: neither GATEWAY_SECRET_KEY nor any of "
            "GATEWAY_PREVIOUS_SECRET_KEYS is the key it was stored with"
        )


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_prefix(key: str) -> str:
    """The part of a key safe to show in listings, enough to tell keys apart."""
    return key[: len(API_KEY_PREFIX) + 6]
