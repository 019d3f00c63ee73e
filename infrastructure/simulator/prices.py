"""Price paths the matching core walks along: a seeded random walk or a recorded CSV of trades."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path

from execledger.domain.values import to_decimal

# Shipped trade tapes (time,price,volume), keyed by AssetPairs key.
SHIPPED_TAPES = {"XXBTZUSD": "xbtusd_trades.csv", "XETHZUSD": "ethusd_trades.csv"}


def load_trade_tape(source: str | Path) -> list[Decimal]:
    """Prices of a ``time,price,volume`` CSV; a bare shipped file name is looked up in the package data."""
    path = Path(source)
    if path.exists():
        text = path.read_text()
    else:
        text = resources.files("execledger.infrastructure.simulator.data").joinpath(str(source)).read_text()
    rows = csv.DictReader(text.splitlines())
    prices = [to_decimal(row["price"]) for row in rows]
    if not prices:
        raise ValueError(f"trade tape {source} has no rows")
    return prices


class PricePath:
    """The mark price of one pair. ``step`` moves along the tape (cycling) or takes one random-walk step."""

    def __init__(
        self,
        start: Decimal,
        price_decimals: int,
        rng: random.Random,
        volatility: Decimal = Decimal("0.001"),
        tape: Sequence[Decimal] | None = None,
    ):
        self._quantum = Decimal(1).scaleb(-price_decimals)
        self._rng = rng
        self._volatility = volatility
        self._tape = list(tape) if tape else None
        self._position = 0
        self.mark = self._tape[0] if self._tape else start.quantize(self._quantum)

    def step(self) -> Decimal:
        """Advance one step and return the new mark."""
        if self._tape:
            self._position = (self._position + 1) % len(self._tape)
            self.mark = self._tape[self._position]
        else:
            # Gaussian relative moves, rounded onto the pair's price grid; floats only feed the draw.
            move = Decimal(repr(self._rng.gauss(0.0, 1.0))) * self._volatility
            new = (self.mark * (1 + move)).quantize(self._quantum, rounding=ROUND_HALF_UP)
            self.mark = max(new, self._quantum)
        return self.mark

    def set(self, price: Decimal) -> None:
        """Jump the mark (the control surface's "set the mark price")."""
        self.mark = price
