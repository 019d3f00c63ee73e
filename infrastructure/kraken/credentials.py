"""Kraken API credentials: from the environment (``Settings``) or a secret file, checked at start, never shown.

The secret stays a ``SecretStr`` until the moment of signing; the repr of every object here is redacted, and no
error message quotes the key or the secret.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from execledger.infrastructure.kraken.auth import InvalidSecret, decode_secret
from execledger.infrastructure.settings import Settings


class CredentialsError(ValueError):
    """The credentials are missing, malformed, unreadable or rejected (the message says which, never the value)."""


def read_secret_file(path: Path) -> SecretStr:
    """The secret in ``path``; refused if group or others may read or write the file (chmod 600 it)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise CredentialsError(f"Kraken secret file {path} cannot be read: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"Kraken secret file {path} is accessible by group or others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    return SecretStr(path.read_text().strip())


@dataclass(frozen=True, repr=False)
class KrakenCredentials:
    """One API key and its secret. ``secret_bytes()`` is the only way to the secret, used by the signer."""

    key: str
    secret: SecretStr

    def __post_init__(self) -> None:
        if not self.key or any(c.isspace() for c in self.key):
            raise CredentialsError("the Kraken API key is empty or contains whitespace")
        try:
            decode_secret(self.secret.get_secret_value())
        except InvalidSecret as exc:
            raise CredentialsError(f"{exc} (check EXECLEDGER_KRAKEN_SECRET / EXECLEDGER_KRAKEN_SECRET_FILE)") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> KrakenCredentials:
        """From ``EXECLEDGER_KRAKEN_KEY`` and ``EXECLEDGER_KRAKEN_SECRET`` or ``EXECLEDGER_KRAKEN_SECRET_FILE``."""
        if settings.kraken_key is None:
            raise CredentialsError("EXECLEDGER_KRAKEN_KEY is not set")
        if settings.kraken_secret is not None and settings.kraken_secret_file is not None:
            raise CredentialsError("set EXECLEDGER_KRAKEN_SECRET or EXECLEDGER_KRAKEN_SECRET_FILE, not both")
        if settings.kraken_secret is not None:
            secret = settings.kraken_secret
        elif settings.kraken_secret_file is not None:
            secret = read_secret_file(settings.kraken_secret_file)
        else:
            raise CredentialsError("neither EXECLEDGER_KRAKEN_SECRET nor EXECLEDGER_KRAKEN_SECRET_FILE is set")
        return cls(key=settings.kraken_key.get_secret_value().strip(), secret=secret)

    def secret_bytes(self) -> bytes:
        return decode_secret(self.secret.get_secret_value())

    @property
    def key_hint(self) -> str:
        """Enough of the key to tell two keys apart in logs."""
        return f"{self.key[:4]}..." if len(self.key) > 8 else "***"

    def __repr__(self) -> str:
        return f"KrakenCredentials(key={self.key_hint!r}, secret='**********')"

    __str__ = __repr__
