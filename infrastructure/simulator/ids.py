"""Kraken-style identifiers: order txids ``OXXXXX-XXXXX-XXXXXX`` and trade ids ``TXXXXX-XXXXX-XXXXXX``."""

from __future__ import annotations

import random
import string

_ALPHABET = string.ascii_uppercase + string.digits


class IdFactory:
    """Draws ids from its own seeded RNG, so ids never disturb the price path's random stream."""

    def __init__(self, seed: int):
        self._rng = random.Random(f"ids-{seed}")
        self._trade_number = 40_000_000

    def _chunk(self, n: int) -> str:
        return "".join(self._rng.choice(_ALPHABET) for _ in range(n))

    def _kraken_id(self, prefix: str) -> str:
        return f"{prefix}{self._chunk(5)}-{self._chunk(5)}-{self._chunk(6)}"

    def order_txid(self) -> str:
        return self._kraken_id("O")

    def trade_txid(self) -> str:
        return self._kraken_id("T")

    def amend_id(self) -> str:
        """AmendOrder's ``amend_id`` (``TEZA4R-DSDGT-IJBOJK`` in Kraken's example: the trade id pattern)."""
        return self._kraken_id("T")

    def ws_token(self) -> str:
        return "".join(self._rng.choice(string.ascii_letters + string.digits) for _ in range(43))

    def trade_number(self) -> int:
        """The integer ``trade_id`` Kraken puts beside a trade's txid (increasing, like the venue's)."""
        self._trade_number += 1
        return self._trade_number
