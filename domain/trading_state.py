"""The trading state (HALT switch): RUNNING, REDUCING or HALTED, with who changed it and why."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from eventsourcing.domain import Aggregate, event

from execledger.domain.clock import TimestampedEvent
from execledger.domain.errors import DomainError

TRADING_STATE_ID = uuid.UUID("2b7f6a7e-5d55-4c39-9f0c-7f5f2d8e1a01")


class TradingMode(StrEnum):
    RUNNING = "running"  # new entries accepted
    REDUCING = "reducing"  # no new entries; resting entries keep working; exits are managed
    HALTED = "halted"  # no new entries; resting entries canceled if asked; exits are managed


class TradingHalted(DomainError):
    """A new entry was refused because trading is not RUNNING."""

    def __init__(self, mode: TradingMode, by: str, why: str):
        self.mode, self.by, self.why = mode, by, why
        super().__init__(f"trading is {mode.value} (set by {by}: {why}); new entries are refused")


class TradingState(Aggregate):
    """One per ledger. Exits (stops, take-profits, market exits) are never blocked by it: they reduce risk."""

    class Event(TimestampedEvent):
        pass

    class Created(Event, Aggregate.Created):
        pass

    @event("Started")
    def __init__(self) -> None:
        self.mode = TradingMode.RUNNING
        self.by = "system"
        self.why = "initial state"
        self.cancel_entries = False
        self.changed_at: datetime | None = None

    @staticmethod
    def create_id() -> uuid.UUID:
        return TRADING_STATE_ID

    def change(self, *, mode: TradingMode, by: str, why: str, at: datetime, cancel_entries: bool = False) -> bool:
        """Switch mode. Returns False (writes nothing) if nothing would change. ``by`` and ``why`` are required."""
        mode = TradingMode(mode)
        if not by.strip() or not why.strip():
            raise ValueError("a trading-state change needs who (by) and why")
        if mode is TradingMode.RUNNING and cancel_entries:
            raise ValueError("cancel_entries only applies when halting")
        if (mode, cancel_entries) == (self.mode, self.cancel_entries):
            return False
        self._changed(mode=mode.value, by=by, why=why, at=at, cancel_entries=cancel_entries)
        return True

    @event("ModeChanged")
    def _changed(self, mode: str, by: str, why: str, at: datetime, cancel_entries: bool) -> None:
        self.mode = TradingMode(mode)
        self.by, self.why, self.changed_at, self.cancel_entries = by, why, at, cancel_entries

    def check_entry_allowed(self) -> None:
        if self.mode is not TradingMode.RUNNING:
            raise TradingHalted(self.mode, self.by, self.why)
