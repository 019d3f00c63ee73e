"""One pair's resting orders, indexed so a price move touches only the orders it crosses: O(log n) per order.

Heaps hold ``(key, seq, token, txid)``: ``key`` orders them (a buy limit by its price, highest first; a sell limit
lowest first; a trigger by how soon the price reaches it), ``seq`` keeps time priority among equal keys, and
``token`` invalidates an entry lazily when the order is amended, triggered or closed (the order's own token moves
on; a popped entry whose token no longer matches is dropped). Trailing stops move with every price, so they are
kept apart and looked at on each move (they are few).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Entry = tuple[Decimal, int, int, str]


@dataclass
class PairBook:
    buys: list[Entry] = field(default_factory=list)  # (-limit, ...): the highest bid first
    sells: list[Entry] = field(default_factory=list)  # (limit, ...): the lowest ask first
    rising: dict[str, list[Entry]] = field(default_factory=lambda: {"last": [], "index": []})  # fire at >= trigger
    falling: dict[str, list[Entry]] = field(default_factory=lambda: {"last": [], "index": []})  # fire at <= trigger
    trailing: dict[str, Any] = field(default_factory=dict)  # txid -> order

    @staticmethod
    def push(heap: list[Entry], key: Decimal, seq: int, token: int, txid: str) -> None:
        heapq.heappush(heap, (key, seq, token, txid))

    @staticmethod
    def pop_while(heap: list[Entry], due: Callable[[Decimal], bool]) -> Iterator[tuple[int, str]]:
        """Pop every entry whose key is due, yielding ``(token, txid)`` (stale entries included: check them)."""
        while heap and due(heap[0][0]):
            _, _, token, txid = heapq.heappop(heap)
            yield token, txid

    def size(self) -> int:
        """Entries held (stale ones included): for tests of the index, not a count of open orders."""
        return (
            len(self.buys)
            + len(self.sells)
            + sum(len(h) for h in self.rising.values())
            + sum(len(h) for h in self.falling.values())
            + len(self.trailing)
        )
