"""One log line per decision and fact the ledger records, with the order's ids on the line.

``EventLogger`` is a unit-of-work listener (``(aggregate, events)`` pairs after each commit): an accepted signal, a
placement (Submitted, then Acknowledged with the txid), each fill, each bracket, every OCO action (sibling canceled,
leg shrunk or re-created, exit at market), a timeout, a rejection, what reconciliation found (events whose reason
or fill says ``source=reconciliation``) and every trading-mode change. Loggers: ``execledger.orders`` and
``execledger.trading``. Every line carries ``signal_id``, ``order_id``, ``role``, ``cl_ord_id``, ``txid`` (once
known), ``event`` and, for decisions, ``rule``. A refused signal is one line of its own (``log_signal_refused``,
logger ``execledger.signals``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from execledger.domain.commands import SignalRefusals
from execledger.domain.order import Order
from execledger.domain.pairs import PairRegistry
from execledger.domain.trading_state import TradingState
from execledger.domain.values import plain
from execledger.infrastructure.logconfig import one_line
from execledger.infrastructure.present import pair_name

signals_log = logging.getLogger("execledger.signals")
orders_log = logging.getLogger("execledger.orders")
trading_log = logging.getLogger("execledger.trading")


def _d(value: Any) -> str:
    if value is None:
        return "-"
    return plain(value if isinstance(value, Decimal) else Decimal(str(value)))


def _reason(ev: Any) -> dict:
    return getattr(ev, "reason", None) or {}


def describe(order: Order, ev: Any, pairs: PairRegistry | None = None) -> tuple[int, str] | None:
    """The level and text of the line for one Order event (None: not worth a line of its own)."""
    name = type(ev).__name__
    why = _reason(ev)
    rule = why.get("rule")
    pair = pair_name(pairs, order.pair)
    what = f"{order.side.value} {_d(order.quantity)} {pair} {order.order_type.value}"
    recon = "reconciliation: " if why.get("source") == "reconciliation" else ""
    if name == "Placed":
        if order.parent_id is None:
            extras = [f"@ {_d(order.limit_price)}" if order.limit_price is not None else ""]
            extras += [f"sl {_d(order.sl_price)}" if order.sl_price is not None else ""]
            extras += [f"tp {_d(order.tp_price)}" if order.tp_price is not None else ""]
            return logging.INFO, f"accepted signal {order.signal_id}: {what} " + " ".join(e for e in extras if e)
        trigger = f" trigger {_d(order.trigger_price)}" if order.trigger_price is not None else ""
        return logging.INFO, f"{order.role.value} leg decided: {what}{trigger} [{rule}]"
    if name == "Submitted":
        return logging.INFO, f"sending AddOrder: {order.role.value} {what}"
    if name == "Acknowledged":
        return logging.INFO, f"{recon}placed on the venue as {ev.txid}"
    if name == "Rejected":
        return logging.WARNING, f"{recon}rejected ({why.get('error_class') or rule}): {ev.error}"
    if name == "SubmissionOutcomeUnknown":
        return logging.WARNING, f"AddOrder outcome unknown ({ev.error}): resolving by cl_ord_id, never resending"
    if name == "NotSent":
        return logging.WARNING, f"AddOrder not sent ({ev.error}): sent again later"
    if name in ("PartiallyFilled", "Filled"):
        source = "reconciliation: " if ev.source == "reconciliation" else ""
        done = "complete" if name == "Filled" else "partial"
        return logging.INFO, (
            f"{source}fill {_d(ev.quantity)} @ {_d(ev.price)} (fee {_d(ev.fee)} {ev.fee_asset or ''}".rstrip()
            + f"); {_d(ev.cumulative_quantity)} of {_d(order.quantity)} filled, {done} [trade {ev.trade_id}]"
        )
    if name == "CancelRequested":
        label = "OCO" if str(rule).startswith("oco") else "cancel"
        return logging.INFO, f"{label}: cancel requested [{rule}] {why.get('text', '')}".rstrip()
    if name == "CancelRejected":
        return logging.WARNING, f"cancel refused by the venue: {ev.error}"
    if name == "Canceled":
        told = ev.venue_reason or why.get("text") or ""
        return logging.INFO, f"{recon}canceled" + (f" ({told})" if told else "")
    if name == "Expired":
        return logging.INFO, f"{recon}expired"
    if name == "TimedOut":
        return logging.INFO, (
            f"timeout: open {float(ev.age_s):g}s, threshold {float(ev.threshold_s):g}s [{ev.rule}]: canceling the rest"
        )
    if name == "BracketPlaced":
        return logging.INFO, (
            f"bracket {ev.index}: protect {_d(ev.quantity)} with stop {_d(ev.sl_price)} "
            f"and take-profit {_d(ev.tp_price)} [{rule}]"
        )
    if name == "BracketLegAdded":
        return logging.INFO, f"OCO: new {ev.role} leg for bracket {ev.index} [{rule}] {why.get('text', '')}".rstrip()
    if name == "BracketResized":
        return logging.INFO, f"bracket {ev.index}: protect {_d(ev.quantity)} now [{rule}]"
    if name == "LegEmulated":
        return logging.INFO, f"bracket {ev.index}: {ev.role} held by the ledger at {_d(ev.trigger_price)} [{rule}]"
    if name == "EmulatedLegTriggered":
        return logging.INFO, f"bracket {ev.index}: {ev.role} triggered at {_d(ev.price)} [{rule}]"
    if name == "AmendRequested":
        label = "OCO" if str(rule).startswith("oco") else "amend"
        return logging.INFO, f"{label}: amend to {_d(ev.quantity)} requested [{rule}] {why.get('text', '')}".rstrip()
    if name == "Amended":
        return logging.INFO, f"{recon}amended: now {_d(ev.quantity)} ({ev.source})"
    if name == "AmendRejected":
        return logging.WARNING, f"amend refused by the venue: {ev.error}"
    if name == "ShortfallRecorded":
        return logging.WARNING, f"the account holds {_d(ev.quantity)} less than this position's fills [{rule}]"
    if name == "Deferred":
        return logging.INFO, f"deferred [{rule}]: {why.get('text', '')}"
    if name == "CloseRequested":
        return logging.INFO, f"close requested [{rule}]: {why.get('text', '')}"
    if name == "PositionExitAdded":
        return logging.INFO, f"exit at market for {_d(ev.quantity)} {pair} [{rule}]"
    if name == "OperatorResolved":
        return logging.WARNING, f"resolved by an operator [{rule}]: {why.get('text', '')}"
    return None


def log_signal_refused(signal_id: object, refusal: str, reason: object, **extra: object) -> None:
    """The one line of a refused signal (logger ``execledger.signals``, WARNING): ``signal <id> refused (<kind>):
    <reason>`` with ``signal_id`` and ``refusal`` on the line; the signal's own text is escaped to one line. Written
    by the API for a signal refused at once (nothing recorded), and by the trading process after it committed the
    refusal of a recorded ``submit_signal`` command (``EventLogger``): each refusal once."""
    sid = one_line(signal_id, 128) if signal_id not in (None, "") else None
    fields = {"signal_id": sid, "refusal": refusal, "event": "SignalRefused", **extra}
    signals_log.warning(
        f"signal {sid or '(no signal_id)'} refused ({refusal}): {one_line(reason)}",
        extra={k: v for k, v in fields.items() if v is not None},
    )


class EventLogger:
    """Writes the lines for each saved batch; call it with ``[(aggregate, events), ...]``."""

    def __init__(self, pairs: PairRegistry | None = None):
        self.pairs = pairs

    def __call__(self, saved: Sequence[tuple[Any, list[Any]]]) -> None:
        for aggregate, events in saved:
            if isinstance(aggregate, Order):
                for ev in events:
                    self._order_line(aggregate, ev)
            elif isinstance(aggregate, TradingState):
                for ev in events:
                    self._trading_line(aggregate, ev)
            elif isinstance(aggregate, SignalRefusals):
                for ev in events:
                    log_signal_refused(
                        aggregate.signal_id, ev.refusal, ev.message, command_id=ev.command_id, refused_by=ev.process
                    )

    def _order_line(self, order: Order, ev: Any) -> None:
        described = describe(order, ev, self.pairs)
        if described is None:
            return
        level, text = described
        rule = _reason(ev).get("rule") or getattr(ev, "rule", None)
        extra = {
            "signal_id": order.signal_id,
            "order_id": str(order.id),
            "role": order.role.value,
            "cl_ord_id": order.cl_ord_id,
            "txid": order.txid,
            "event": type(ev).__name__,
            "rule": rule,
        }
        orders_log.log(level, text, extra={k: v for k, v in extra.items() if v is not None})

    def _trading_line(self, state: TradingState, ev: Any) -> None:
        if type(ev).__name__ != "ModeChanged":
            return
        cancels = " and cancels resting entries" if ev.cancel_entries else ""
        level = logging.INFO if ev.mode == "running" else logging.WARNING
        trading_log.log(
            level, f"trading mode {ev.mode}{cancels} (by {ev.by}: {ev.why})", extra={"event": "ModeChanged"}
        )
