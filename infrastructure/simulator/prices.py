"""Price paths the matching core walks along: a seeded random walk, or recorded trades (a tape).

Tapes are Kraken's published trade-history CSV (the "Time and Sales" files Kraken offers for download: one trade a
line, ``timestamp,price,volume``, no header; a header line is tolerated). ``TapePlayer`` replays one at a chosen
speed against the simulator's clock: speed 60 plays a minute of trades per second of wall time; with a frozen
clock it plays what ``advance_time`` makes due, and ``step`` plays rows one at a time.
"""

from __future__ import annotations

import asyncio
import bisect
import csv
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path

from execledger.domain.values import to_decimal

# Shipped trade tapes, keyed by AssetPairs key.
SHIPPED_TAPES = {"XXBTZUSD": "xbtusd_trades.csv", "XETHZUSD": "ethusd_trades.csv", "SOLUSD": "solusd_trades.csv"}


@dataclass(frozen=True)
class TapeRow:
    time: float
    price: Decimal
    volume: Decimal


def _tape_text(source: str | Path) -> str:
    path = Path(source)
    if path.exists():
        return path.read_text()
    name = str(source)
    if "/" in name or "\\" in name:
        raise ValueError(f"trade tape {source} does not exist")
    try:
        return resources.files("execledger.infrastructure.simulator.data").joinpath(name).read_text()
    except (FileNotFoundError, IsADirectoryError):
        shipped = ", ".join(sorted(SHIPPED_TAPES.values()))
        raise ValueError(f"trade tape {source} does not exist (shipped tapes: {shipped})") from None


def load_tape(source: str | Path) -> list[TapeRow]:
    """The rows of a ``timestamp,price,volume`` CSV (a bare shipped file name is looked up in the package data).
    Raises ``ValueError`` naming the line of a row that does not parse."""
    rows: list[TapeRow] = []
    for number, fields in enumerate(csv.reader(_tape_text(source).splitlines()), start=1):
        if not fields or not "".join(fields).strip():
            continue
        if number == 1 and not fields[0].strip().replace(".", "", 1).isdigit():
            continue  # a header line
        if len(fields) < 3:
            raise ValueError(f"trade tape {source} line {number}: expected timestamp,price,volume")
        try:
            row = TapeRow(float(fields[0]), to_decimal(fields[1].strip()), to_decimal(fields[2].strip()))
        except ValueError:  # the line itself is not repeated: a file named by mistake may not be a tape at all
            raise ValueError(f"trade tape {source} line {number}: not timestamp,price,volume numbers") from None
        if row.price <= 0 or row.volume < 0:
            raise ValueError(f"trade tape {source} line {number}: price must be positive, volume not negative")
        if rows and row.time < rows[-1].time:
            raise ValueError(f"trade tape {source} line {number}: timestamps must not go back")
        rows.append(row)
    if not rows:
        raise ValueError(f"trade tape {source} has no rows")
    return rows


def load_trade_tape(source: str | Path) -> list[Decimal]:
    """The prices of a tape (the cycling ``price_source="csv"`` path)."""
    return [row.price for row in load_tape(source)]


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

    def requantize(self, price_decimals: int) -> None:
        """The pair's ``pair_decimals`` changed: future walk steps land on the new grid."""
        self._quantum = Decimal(1).scaleb(-price_decimals)


class TapePlayer:
    """Plays one pair's tape into the market: each row is a trade at its price and volume.

    The tape is mapped onto simulator time: row ``i`` is due at ``start + (row.time - first.time) / speed``.
    ``play_due()`` plays every row due by now (called by the simulator's timer sweep and by ``advance_time``);
    ``step(n)`` plays the next ``n`` rows whatever the time. ``on_trade(price, volume)`` is the market's entry.
    """

    def __init__(
        self,
        pair_key: str,
        rows: Sequence[TapeRow],
        on_trade: Callable[[Decimal, Decimal], None],
        clock: Callable[[], float],
        speed: float | None = 1.0,
    ):
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError("speed must be positive (or None to play only by step)")
        self.pair_key = pair_key
        self.rows = list(rows)
        self.speed = speed
        self._on_trade = on_trade
        self._clock = clock
        self.started_at = clock()
        self.position = 0  # rows played
        self._offsets = [row.time - self.rows[0].time for row in self.rows]
        self.finished = asyncio.Event() if _has_loop() else None

    @property
    def done(self) -> bool:
        return self.position >= len(self.rows)

    @property
    def tape_time(self) -> float | None:
        """The timestamp of the last row played (None before the first)."""
        return self.rows[self.position - 1].time if self.position else None

    def play_due(self) -> int:
        """Play every row due by the simulator's clock; returns how many were played."""
        if self.speed is None or self.done:
            return 0
        elapsed = (self._clock() - self.started_at) * self.speed
        due = bisect.bisect_right(self._offsets, elapsed + 1e-9)
        return self.step(max(0, due - self.position))

    def step(self, n: int = 1) -> int:
        """Play the next ``n`` rows now; returns how many were played."""
        played = 0
        while played < n and not self.done:
            row = self.rows[self.position]
            self.position += 1
            played += 1
            self._on_trade(row.price, row.volume)
        if self.done and self.finished is not None:
            self.finished.set()
        return played

    def next_due_in(self) -> float | None:
        """Simulator seconds until the next row is due (None when done or not timed)."""
        if self.speed is None or self.done:
            return None
        due_at = self.started_at + self._offsets[self.position] / self.speed
        return max(0.0, due_at - self._clock())

    def status(self) -> dict:
        return {
            "pair": self.pair_key,
            "rows": len(self.rows),
            "played": self.position,
            "speed": self.speed,
            "tape_time": self.tape_time,
            "done": self.done,
        }


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
