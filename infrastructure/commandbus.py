"""CommandBus: how any process (the api role, the CLI, a console button) hands a command to the trading process.

``issue`` records the command in the commands log (one commit) and wakes a trading process running in this same
process; a trading process elsewhere learns of it through PostgreSQL's NOTIFY or by polling the log. ``receipt``
then waits, bounded, for the trading process's ``CommandReceipt``: resolved at once in-process (a unit-of-work
listener), otherwise by reading the orders store with a short backoff. ``trading_process`` says whether a trading
process holds the ledger's writer lock at all, so a caller can say "none is running" instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from execledger.domain.commands import Command, CommandKind, CommandReceipt
from execledger.infrastructure.bootstrap import Ledger, process_name
from execledger.infrastructure.writerlock import WriterLock

log = logging.getLogger("execledger.commandbus")


class CommandBus:
    def __init__(self, ledger: Ledger, *, role: str, local_trading: Any = None, lock_probe_ttl_s: float = 1.0):
        self.ledger = ledger
        self.origin = process_name(role)
        self.local_trading = local_trading  # the TradingService of this process, when it runs the trading role
        self._waiters: dict[UUID, asyncio.Future] = {}
        self._lock_probe_ttl_s = lock_probe_ttl_s
        self._probed: tuple[float, str | None] | None = None
        if local_trading is not None:
            ledger.engine.uow.add_listener(self._on_commit)

    def issue(self, kind: CommandKind, payload: dict[str, Any], *, by: str, why: str) -> Command:
        """Record a command (raises InvalidCommand naming the field); the trading process carries it out."""
        command = Command.issue(kind=kind, payload=payload, by=by, why=why, origin=self.origin)
        self.ledger.commands.save(command)
        if self.local_trading is not None:
            self.local_trading.commands_waiting()
        return command

    def find_receipt(self, command_id: UUID) -> CommandReceipt | None:
        try:
            receipt = self.ledger.app.repository.get(command_id)
        except AggregateNotFoundError:
            return None
        return receipt if isinstance(receipt, CommandReceipt) else None

    async def receipt(self, command_id: UUID, timeout: float) -> CommandReceipt | None:
        """The trading process's receipt of the command, or None if none arrived within ``timeout`` seconds."""
        found = self.find_receipt(command_id)
        if found is not None or timeout <= 0:
            return found
        loop = asyncio.get_running_loop()
        future = self._waiters.setdefault(command_id, loop.create_future())
        deadline = loop.time() + timeout
        pause = 0.002
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return self.find_receipt(command_id)
                try:
                    # In-process the listener resolves the future; across processes the store is read again.
                    return await asyncio.wait_for(asyncio.shield(future), min(pause, remaining))
                except TimeoutError:
                    found = await asyncio.to_thread(self.find_receipt, command_id)
                    if found is not None:
                        return found
                pause = min(pause * 2, 0.02 if self.local_trading is None else 0.25)
        finally:
            self._waiters.pop(command_id, None)
            if not future.done():
                future.cancel()

    def _on_commit(self, committed) -> None:
        for aggregate, _events in committed:
            if isinstance(aggregate, CommandReceipt):
                future = self._waiters.get(aggregate.id)
                if future is not None and not future.done():
                    future.set_result(aggregate)

    def trading_process(self) -> str | None:
        """Who holds the ledger's writer lock (a running trading process), or None; probed at most once per TTL."""
        if self.local_trading is not None:
            return self.ledger.engine.control.process
        now = time.monotonic()
        if self._probed is None or now - self._probed[0] > self._lock_probe_ttl_s:
            self._probed = (now, WriterLock(self.ledger.settings).holder())
        return self._probed[1]
