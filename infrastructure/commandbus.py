"""CommandBus: how any process (the api role, the CLI, a console button) hands a command to the trading process.

``issue`` records the command in the commands log (one commit) and wakes a trading process running in this same
process; a trading process elsewhere learns of it through PostgreSQL's NOTIFY or by polling the log. ``receipt``
then waits, bounded, for the trading process's ``CommandReceipt``: resolved at once in-process (a unit-of-work
listener), otherwise by reading the orders store with a short backoff. ``trading_process`` says whether a trading
process holds the ledger's writer lock at all, so a caller can say "none is running" instead of waiting.

When no trading process runs, a command is checked before it is recorded, since nobody would tell its issuer
about a refusal until the next start: the ledger must be one a trading process has run on (``LedgerUnused``
otherwise: a mistyped data dir or schema), and the order or signal a cancel, close or resolve names must be in it
(``TargetNotFound``), and an order a cancel or resolve names must not have ended already (``TargetNotAllowed``).
Nothing is recorded when a check fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from execledger.application.audit import resolve_order
from execledger.application.ledger import OrderNotFound, entry_order_id
from execledger.domain.clock import stamped
from execledger.domain.commands import (
    CancelOrder,
    ClosePosition,
    Command,
    CommandKind,
    CommandReceipt,
    ResolveOrder,
    SignalRefusals,
    signal_command_id,
    signal_refusals_id,
)
from execledger.domain.order import Order
from execledger.infrastructure.bootstrap import Ledger, process_name
from execledger.infrastructure.preflight import describe_ledger
from execledger.infrastructure.writerlock import WriterLock

log = logging.getLogger("execledger.commandbus")


class LedgerUnused(RuntimeError):
    """No trading process has ever run on this ledger and none runs now: a command recorded here would never be
    carried out (the setting names the store, most likely mistyped). ``setting`` names it; nothing was recorded."""

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class TargetNotFound(LookupError):
    """The order or signal a command names is not in the ledger (checked while no trading process runs)."""


class TargetNotAllowed(RuntimeError):
    """The order a cancel or resolve names has already ended (canceled, filled, ...): the trading process would
    refuse it, and an ended order never works again (checked while no trading process runs)."""


@dataclass(frozen=True)
class SignalTrace:
    """What became of a signal recorded as a ``submit_signal`` command that has no entry order: ``pending`` (its
    command waits for the trading process) or ``refused`` (kind, reason, when and by which process)."""

    signal_id: str
    status: str  # "pending" or "refused"
    command_id: str  # the command of the newest attempt
    recorded_at: datetime  # when that command was recorded (UTC)
    refusal: str | None = None  # a ``Refusal`` value (busy, stale, halted, invalid, conflict)
    reason: str | None = None
    refused_at: datetime | None = None
    refused_by: str | None = None  # the trading process that refused it
    refused_times: int = 0  # how many of the signal's commands were refused in all


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

    def issue(
        self, kind: CommandKind, payload: dict[str, Any], *, by: str, why: str, command_id: UUID | None = None
    ) -> Command:
        """Record a command; the trading process carries it out. Raises InvalidCommand naming the field, and, when
        no trading process runs, LedgerUnused or TargetNotFound (see ``check``); nothing is recorded then. A
        ``command_id`` already recorded raises eventsourcing's IntegrityError (nothing recorded)."""
        command = Command.issue(kind=kind, payload=payload, by=by, why=why, origin=self.origin, command_id=command_id)
        self.record(command)
        return command

    def find_command(self, command_id: UUID) -> Command | None:
        try:
            command: Command = self.ledger.commands.repository.get(command_id)
        except AggregateNotFoundError:
            return None
        return command if isinstance(command, Command) else None

    def latest_refusal(self, signal_id: str) -> SignalRefusals.Event | None:
        """The newest refusal of signal ``signal_id``'s commands (its ``version`` counts them), or None: one indexed
        read of the newest event of its ``SignalRefusals``, however many there were."""
        recorder = self.ledger.app.recorder
        stored = recorder.select_events(signal_refusals_id(signal_id), desc=True, limit=1)
        if not stored:
            return None
        event = self.ledger.app.mapper.to_domain_event(stored[0])
        return event if isinstance(event, SignalRefusals.Event) else None

    def signal_trace(self, signal_id: str) -> SignalTrace | None:
        """What became of a signal that has no entry order, by three keyed reads (no scan): its newest refusal, the
        command of its next attempt and that command's receipt. Pending: that command is recorded and not yet carried
        out. Refused: the newest refusal (or the receipt that just refused the command). None: never recorded."""
        latest = self.latest_refusal(signal_id)
        refused = latest.originator_version if latest is not None else 0
        command = self.find_command(signal_command_id(signal_id, refused))
        if command is not None:
            receipt = self.find_receipt(command.id)
            if receipt is None:
                return SignalTrace(signal_id, "pending", str(command.id), command.created_on, refused_times=refused)
            if receipt.refusal is None:
                return None  # carried out: the entry order answers (it was committed with this receipt)
            return SignalTrace(
                signal_id,
                "refused",
                str(command.id),
                command.created_on,
                refusal=receipt.refusal.value,
                reason=str(receipt.detail.get("message", "")),
                refused_at=receipt.created_on,
                refused_by=receipt.process,
                refused_times=refused + 1,
            )
        if latest is None:
            return None
        return SignalTrace(
            signal_id,
            "refused",
            str(getattr(latest, "command_id", "")),
            datetime.fromisoformat(str(getattr(latest, "recorded_at", ""))),
            refusal=str(getattr(latest, "refusal", "")),
            reason=str(getattr(latest, "message", "")),
            refused_at=stamped(latest).timestamp,
            refused_by=str(getattr(latest, "process", "")),
            refused_times=refused,
        )

    def record(self, command: Command) -> None:
        """Record an issued (validated) command, checked first when no trading process runs."""
        if self.local_trading is None and self.trading_process() is None:
            self.check(command)
        self.ledger.commands.save(command)
        if self.local_trading is not None:
            self.local_trading.commands_waiting()

    def check(self, command: Command) -> None:
        """What the trading process would find only at its next start: raises LedgerUnused when no trading process
        has ever run on this ledger, TargetNotFound when the order (order id, Kraken txid or cl_ord_id) or the signal
        (signal id, or any id of one of its orders) a cancel, resolve or close names is not in it, TargetNotAllowed
        when the order a cancel or resolve names has ended."""
        if not self.ledger_in_use():
            setting, where = describe_ledger(self.ledger.settings)
            raise LedgerUnused(
                setting,
                f"no trading process has ever run on the ledger at {where}: the {command.kind.value} was not "
                f"recorded (is {setting} the one the trading process uses?)",
            )
        payload = command.parsed()
        if isinstance(payload, CancelOrder | ResolveOrder):
            order = self.find_order(payload.order)
            if order is None:
                raise TargetNotFound(
                    f"no order {payload.order!r} in this ledger: the {command.kind.value} was not recorded"
                )
            if order.is_terminal:  # what TradingControl refuses, and an ended order stays ended
                raise TargetNotAllowed(
                    f"the order {payload.order!r} is already {order.state.value}: the {command.kind.value} was not "
                    "recorded"
                )
        if isinstance(payload, ClosePosition) and self.find_signal_entry(payload.signal_id) is None:
            raise TargetNotFound(
                f"no signal {payload.signal_id!r} in this ledger: the {command.kind.value} was not recorded"
            )

    def ledger_in_use(self) -> bool:
        """A trading process has run on this ledger: its log holds events, or its writer lock left its trace."""
        return (self.ledger.app.recorder.max_notification_id() or 0) > 0 or WriterLock(
            self.ledger.settings
        ).has_been_held()

    def find_order(self, ref: str) -> Order | None:
        """The order the trading process would find for ``ref``: its order id, Kraken txid or cl_ord_id, exactly
        (``OrderIndex.resolve``). The read models answer first; the log is scanned only while they lag."""
        ref = ref.strip()
        order = None
        with contextlib.suppress(ValueError):
            order = self.ledger.ledger.find(UUID(ref))
        if order is None:
            found = self.ledger.queries.find_order_id(ref)
            if found is not None:
                order = self.ledger.ledger.find(UUID(found))
            elif self.ledger.projector.lag() > 0:
                try:
                    order = resolve_order(self.ledger.ledger, ref)
                except OrderNotFound:
                    order = None
        if order is None or ref not in (str(order.id), order.txid, order.cl_ord_id):
            return None
        return order

    def find_signal_entry(self, ref: str) -> Order | None:
        """What ``close`` acts on: the entry of signal ``ref``, else of the order ``ref`` names (any of its ids)."""
        entry = self.ledger.ledger.find(entry_order_id(ref.strip()))
        if entry is not None:
            return entry
        order = self.find_order(ref)
        if order is None:
            return None
        return order if order.parent_id is None else self.ledger.ledger.find(order.parent_id)

    def find_receipt(self, command_id: UUID) -> CommandReceipt | None:
        try:
            receipt: CommandReceipt = self.ledger.app.repository.get(command_id)
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
