"""Issue 13's faults for the fault suite and the soak: what breaks protection rather than consistency.

Injected at random moments of a run (``ProtectionFaults.inject``), each counted in ``SoakResult.faults``:

- ``invalid_nonce``: the next AddOrder/CancelOrder/AmendOrder is refused ``EAPI:Invalid nonce`` (nothing executed);
- ``nonce_ahead``: another client on the key signs a nonce 0.5-3 s ahead (``/_sim/nonce``): every private call is
  refused until ours passes it;
- ``insufficient_funds``: the next AddOrder is refused ``EOrder:Insufficient funds`` (the leg is resized and sent
  again, the entry rejected at once: the error table's entry column);
- ``base_fees`` / ``quote_fees``: the account's fees go to the base asset (a buy then holds less than it bought:
  Kraken's ``fcib``) or back to the quote (``/_sim/fees``);
- ``hold_request``: the venue holds one AddOrder/CancelOrder/AmendOrder 1-12 s before executing it (a slow engine:
  past the adapter's 10 s timeout the AddOrder's outcome is unknown);
- ``rule_change``: XBT/USD's ``pair_decimals`` changes (0, 1 or 2) on the venue's AssetPairs; undone at settling;
- ``clock_step``: the service's wall clock steps +-2 min or +-1 h (the service runs under libfaketime with a
  timestamp file, its monotonic clock untouched); a step lasts across restarts, as a stepped machine's would.

Checked after every run, beside the invariants of ``harness.py``:

8. no over-exit: no signal's exits filled more than its entry put into the account;
9. no naked position: a position at least the pair's ``ordermin`` with no live exit order (a stop-loss or
   take-profit resting on the venue, or one the ledger holds as an emulated trigger) lasts at most
   ``NAKED_BOUND_S`` of the time the service is up (one retry interval: the service's longest backoff), measured on
   the ledger's own event times.
"""

from __future__ import annotations

import importlib.util
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from execledger.application.service import ServiceConfig
from execledger.domain.position import emulated_roles, exits_of, planned_roles
from execledger.domain.values import ZERO, OrderRole, Side

if TYPE_CHECKING:
    from tests.faults.harness import Session

PAIR = "XBT/USD"
NAKED_BOUND_S = ServiceConfig().retry_max_s  # one retry interval: the longest wait before sending a leg again
WRITES = ("AddOrder", "CancelOrder", "AmendOrder")
CLOCK_STEPS_S = (120, -120, 3600, -3600)
FILLS = ("PartiallyFilled", "Filled")
ENDS = ("Filled", "Canceled", "Expired", "Rejected")


def libfaketime() -> Path | None:
    """The libfaketime shared library the ``libfaketime`` package ships (a dev dependency), or None without it."""
    spec = importlib.util.find_spec("libfaketime")
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.glob("vendor/libfaketime/src/libfaketime.so.1"))
    return found[0] if found else None


@dataclass
class Window:
    """A stretch of wall time (UTC) in which the service was down (killed until recovered)."""

    start: datetime
    end: datetime | None = None


class ProtectionFaults:
    """One session's protection faults: the clock file, what to undo, when the service was down."""

    def __init__(self, session: Session):
        self.session = session
        self.clock_file = session.work_dir / "faketime.rc"
        self.clock_offset_s = 0
        self.library = libfaketime()
        self.original_rules: dict[str, Any] | None = None
        self.down: list[Window] = []

    # -- the service's environment and lifetime ----------------------------------------------------------------

    def service_env(self) -> dict[str, str]:
        """Run the service under libfaketime: its wall clock follows the offset in ``clock_file``."""
        if self.library is None:
            return {}
        if not self.clock_file.exists():
            self._write_offset()
        return {
            "LD_PRELOAD": str(self.library),
            "FAKETIME_TIMESTAMP_FILE": str(self.clock_file),
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_CACHE_DURATION": "1",  # read the file at most once a second
        }

    def service_down(self) -> None:
        if not self.down or self.down[-1].end is not None:
            self.down.append(Window(datetime.now(UTC)))

    def service_up(self) -> None:
        if self.down and self.down[-1].end is None:
            self.down[-1].end = datetime.now(UTC)

    def _write_offset(self) -> None:
        self.clock_file.write_text(f"{self.clock_offset_s:+d}\n")

    # -- injecting ------------------------------------------------------------------------------------------------

    async def inject(self, rng: random.Random) -> None:
        s = self.session
        roll = rng.random()
        if roll < 0.2:
            kind, method = "invalid_nonce", rng.choice(WRITES)
            await s.sim_post("faults", {"path": method, "kind": kind, "count": rng.randint(1, 2)})
        elif roll < 0.3:
            kind, method = "nonce_ahead", "any"
            await s.sim_post("nonce", {"ahead_s": round(rng.uniform(0.5, 3.0), 2)})
        elif roll < 0.5:
            kind, method = "insufficient_funds", "AddOrder"
            await s.inject_write_fault(method, kind)
        elif roll < 0.6:
            kind, method = rng.choice(("base_fees", "quote_fees")), "fees"
            await s.sim_post("fees", {"default": kind.split("_")[0]})
        elif roll < 0.75:
            kind, method = "hold_request", rng.choice(WRITES)
            seconds = round(rng.uniform(1.0, 12.0), 2)
            await s.inject_write_fault(method, kind, 1, seconds)
        elif roll < 0.9:
            kind, method = "rule_change", "AssetPairs"
            if self.original_rules is None:
                entry = await s.sim_get(f"asset_pairs?pair={PAIR}")
                self.original_rules = next(iter(entry.values()))
            await s.sim_post("asset_pairs", {"pair": PAIR, "changes": {"pair_decimals": rng.choice((0, 1, 2))}})
        else:
            kind, method = "clock_step", "wall clock"
            if self.library is None:
                return
            self.clock_offset_s += rng.choice(CLOCK_STEPS_S)
            self._write_offset()
        s.result.faults[kind] += 1
        s.result.faults_by_method[method] += 1

    async def restore(self) -> None:
        """Before settling: the venue's rules as they were (the clock stays stepped, as a machine's would)."""
        if self.original_rules is not None:
            changes = {"pair_decimals": self.original_rules["pair_decimals"]}
            await self.session.sim_post("asset_pairs", {"pair": PAIR, "changes": changes})

    # -- checking -------------------------------------------------------------------------------------------------

    def check(self, lg, engine, orders, bad, stopped_at: datetime) -> None:
        """Invariants 8 (no over-exit) and 9 (no naked position longer than ``NAKED_BOUND_S`` while up)."""
        by_id = {o.id: o for o in orders}
        for entry in (o for o in orders if o.role is OrderRole.ENTRY and planned_roles(o)):
            rules = engine.contingencies.rules(entry)
            exits = exits_of(entry, by_id)
            entered = entry.filled_quantity - (entry.fees_in(rules.base) if entry.side is Side.BUY else ZERO)
            exited = sum((o.filled_quantity for o in exits), ZERO)
            if exited > entered:
                bad(8, f"signal {entry.signal_id}: exits filled {exited}, more than the {entered} entered")
            longest, since = self.longest_naked(lg, entry, exits, rules.ordermin, stopped_at)
            self.session.result.naked_max_s = max(self.session.result.naked_max_s, longest)
            if longest > NAKED_BOUND_S:
                bad(
                    9,
                    f"signal {entry.signal_id}: a position without a live exit order for {longest:.1f}s of service "
                    f"time from {since.isoformat() if since else '-'} (bound {NAKED_BOUND_S:g}s)",
                )

    def longest_naked(self, lg, entry, exits, ordermin: Decimal, stopped_at: datetime) -> tuple[float, datetime | None]:
        """The longest stretch, in seconds the service was up, in which the entry held at least ``ordermin`` and
        no exit order of it was live; and when it began."""
        emulated = bool(emulated_roles(entry))  # a role the ledger holds as a trigger protects throughout
        changes: list[tuple[datetime, int, Decimal, Any]] = []
        for h in lg.ledger.order_history(entry.id):
            if h.name in FILLS:
                changes.append((h.timestamp, 0, Decimal(h.data["quantity"]), None))
        for leg in exits:
            for h in lg.ledger.order_history(leg.id):
                if h.name in FILLS:
                    changes.append((h.timestamp, 0, -Decimal(h.data["quantity"]), None))
                if h.name == "Acknowledged":
                    changes.append((h.timestamp, 1, ZERO, ("live", leg.id)))
                if h.name in ENDS:
                    changes.append((h.timestamp, 2, ZERO, ("ended", leg.id)))
        changes.sort(key=lambda c: (c[0], c[1]))
        held, live, ended = ZERO, set(), set()
        longest, began, naked_since = 0.0, None, None
        for at, _, qty, what in changes:
            held += qty
            if what is not None:
                (live.add if what[0] == "live" else ended.add)(what[1])
            naked = held >= ordermin and not (live - ended) and not emulated
            if naked and naked_since is None:
                naked_since = at
            elif not naked and naked_since is not None:
                span = self.up_seconds(naked_since, at)
                if span > longest:
                    longest, began = span, naked_since
                naked_since = None
        if naked_since is not None:
            span = self.up_seconds(naked_since, stopped_at)
            if span > longest:
                longest, began = span, naked_since
        return longest, began

    def up_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds between ``start`` and ``end`` in which the service was up."""
        total = (end - start).total_seconds()
        for w in self.down:
            w_end = w.end or end
            overlap = (min(end, w_end) - max(start, w.start)).total_seconds()
            total -= max(0.0, overlap)
        return max(0.0, total)
