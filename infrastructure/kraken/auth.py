"""Kraken's private REST request signature (REFERENCE.md section 1), shared by the client and the simulator.

API-Sign = base64(HMAC-SHA512(base64decode(secret), uri_path + SHA256(nonce + post_data)))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


class InvalidSecret(ValueError):
    """The API secret is not valid base64 (the message never contains the secret)."""


def decode_secret(secret_b64: str) -> bytes:
    try:
        raw = base64.b64decode(secret_b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("the Kraken API secret is not valid base64") from None
    if not raw:
        raise InvalidSecret("the Kraken API secret is empty")
    return raw


def sign(uri_path: str, nonce: int | str, post_data: str, secret: bytes) -> str:
    """The ``API-Sign`` header for one request. ``post_data`` is the exact body sent (form or JSON text)."""
    digest = hashlib.sha256(str(nonce).encode() + post_data.encode()).digest()
    mac = hmac.new(secret, uri_path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def verify(uri_path: str, nonce: int | str, post_data: str, secret: bytes, signature: str) -> bool:
    """Constant-time check of a received signature (used by the simulator)."""
    return hmac.compare_digest(sign(uri_path, nonce, post_data, secret), signature)


class Signer:
    """``sign`` for one secret, keyed once: each signature copies the keyed HMAC instead of keying it again. The
    secret lives only inside the HMAC's state; the representation never shows it."""

    __slots__ = ("_keyed",)

    def __init__(self, secret: bytes):
        self._keyed = hmac.new(secret, digestmod=hashlib.sha512)

    def sign(self, uri_path: bytes, nonce: bytes, post_data: bytes) -> str:
        """The ``API-Sign`` header, the same as ``sign`` gives for the same (encoded) inputs."""
        mac = self._keyed.copy()
        mac.update(uri_path + hashlib.sha256(nonce + post_data).digest())
        return base64.b64encode(mac.digest()).decode()

    def __repr__(self) -> str:
        return "Signer(secret='**********')"
