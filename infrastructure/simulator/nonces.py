"""Kraken's nonce rules per API key (REFERENCE.md section 1, "Nonce rules").

- A nonce must be greater than the last one accepted for the key; a refused call changes nothing.
- A nonce window (per key, default 0, in nonce units: 10000 is ten seconds for a millisecond nonce) tolerates a
  nonce below the highest accepted one if it is within the window and was not used before ([S-NW]).
- ``jump_ahead`` plays "another client on the key with a nonce N seconds ahead": the caller's nonces are refused
  with ``EAPI:Invalid nonce`` until its own clock-based nonce passes that value. The caller's scale (ms, 1e-8 s,
  ns: clients differ, REFERENCE.md 1) is read off its last nonce.
"""

from __future__ import annotations

import math

from . import errors as E
from .errors import KrakenError


class NonceBook:
    def __init__(self, window: int = 0):
        self.window = window
        self.last: dict[str, int] = {}
        self._recent: dict[str, set[int]] = {}

    def accept(self, key: str, nonce_text: str) -> int:
        """Accept ``nonce_text`` for ``key`` or raise ``EAPI:Invalid nonce``."""
        if not nonce_text.isdigit():
            raise KrakenError(E.INVALID_NONCE)
        nonce = int(nonce_text)
        last = self.last.get(key, 0)
        if nonce > last:
            self.last[key] = nonce
            self._remember(key, nonce)
            return nonce
        recent = self._recent.get(key, set())
        if self.window > 0 and nonce > last - self.window and nonce not in recent:
            self._remember(key, nonce)
            return nonce
        raise KrakenError(E.INVALID_NONCE)

    def _remember(self, key: str, nonce: int) -> None:
        if self.window <= 0:
            return
        recent = self._recent.setdefault(key, set())
        recent.add(nonce)
        floor = self.last.get(key, 0) - self.window
        if len(recent) > 1024:
            recent.difference_update({n for n in recent if n <= floor})

    def jump_ahead(self, key: str, seconds: float, now: float) -> int:
        """Another client used a nonce ``seconds`` ahead of now on the caller's scale; returns the new last nonce."""
        last = self.last.get(key, 0)
        scale = 10 ** round(math.log10(last / now)) if last > 0 and now > 0 else 1000
        ahead = int((now + seconds) * scale)
        self.last[key] = max(last, ahead)
        return self.last[key]
