"""Replay recorded trades through the ledger's policies under two settings and compare the outcomes side by side.

    .venv/bin/python bench/tape_compare.py --pair SOL/USD --tape solusd_trades.csv \\
        --signals bench/data/solusd_signals.json \\
        --a timeout_s=600,sl_pct=0.5,tp_pct=0.8 --b timeout_s=1800,sl_pct=1.0,tp_pct=0.8

The tape is Kraken's published trade-history CSV (``timestamp,price,volume``; a shipped name or a path). Each run
is a fresh ledger (SQLite in a temporary directory) trading through the real adapter against a fresh simulator
whose prices are the tape, on one clock that follows the tape's timestamps; so timeouts, brackets and OCO behave
as they would have that day. Signals (JSON list) are submitted at ``at`` seconds after the first trade:
``{"at": 0, "signal_id": "s1", "side": "buy", "order_type": "limit", "quantity": "10", "limit_price": "18.80"}``.
A setting is ``timeout_s`` (the limit-entry timeout), ``sl_pct``/``tp_pct`` (bracket distances from the entry's
reference price, the limit price or the trade at submission; omitted: no leg) and ``fill_fractions``
(``0.5/0.5``: partial fills of resting limits).

Printed per setting: entries filled and timed out, fills, volume bought and sold, fees, realised PnL, the position
left and the PnL with it marked at the tape's last price. ``--json FILE`` also writes them. The simulator's
limits are off (this replays policy outcomes, not throttling); the wallet is the quote (``--quote``) plus, by
default, enough of the base for every bracket to rest both legs (Kraken holds funds for untriggered stops).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.values import OrderRole, Side
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.settings import Settings
from execledger.infrastructure.simulator import KrakenSimulator
from execledger.infrastructure.simulator.prices import TapeRow, load_tape

SETTING_KEYS = ("timeout_s", "sl_pct", "tp_pct", "fill_fractions")
SETTLE_ROUNDS = 50


class TapeClock:
    """The one clock of a run: the simulator's frozen clock, read by the ledger through its ``Clock`` port and
    moved along the tape's timestamps."""

    def __init__(self, sim: KrakenSimulator):
        self.sim = sim

    @property
    def t(self) -> float:
        return self.sim.clock.now()

    def move_to(self, t: float) -> None:
        if t > self.t:
            self.sim.clock.advance(t - self.t)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


@dataclass
class Outcome:
    setting: str
    entries: int = 0
    entries_filled: int = 0
    timed_out: int = 0
    fills: int = 0
    bought: Decimal = Decimal(0)
    sold: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    realised_pnl: Decimal = Decimal(0)
    position: Decimal = Decimal(0)
    marked_pnl: Decimal = Decimal(0)
    legs: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {k: (_q(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


def parse_setting(text: str) -> dict[str, str]:
    """``timeout_s=600,sl_pct=0.5`` -> dict; ``ValueError`` names a bad key or value."""
    setting: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        if not sep or key not in SETTING_KEYS:
            raise ValueError(f"{part!r}: a setting is key=value with key one of {', '.join(SETTING_KEYS)}")
        try:
            if key == "fill_fractions":
                [Decimal(v) for v in value.split("/")]
            else:
                Decimal(value)
        except ArithmeticError:
            raise ValueError(f"{part!r}: {value!r} is not a number") from None
        setting[key] = value
    return setting


def load_signals(path: Path) -> list[dict]:
    signals = json.loads(path.read_text())
    if not isinstance(signals, list) or not all(isinstance(s, dict) and "at" in s for s in signals):
        raise ValueError(f"{path}: expected a JSON list of signals, each with 'at' (seconds after the first trade)")
    return sorted(signals, key=lambda s: float(s["at"]))


def _bracket(signal: dict, reference: Decimal, setting: dict[str, str]) -> dict:
    side = Side(signal["side"])
    out = {k: v for k, v in signal.items() if k != "at"}
    for name, sign in (("sl_pct", -1), ("tp_pct", 1)):
        if name in setting:
            move = reference * Decimal(setting[name]) / 100 * sign * (1 if side is Side.BUY else -1)
            price = (reference + move).quantize(Decimal("0.00000001"))
            out["sl_price" if name == "sl_pct" else "tp_price"] = format(price.normalize(), "f")
    if "timeout_s" in setting and out.get("order_type") == "limit":
        out["timeout_s"] = float(setting["timeout_s"])
    return out


async def run_once(
    pair_name: str,
    rows: list[TapeRow],
    signals: list[dict],
    setting: dict[str, str],
    wallet: dict[str, str],
    step: float,
) -> Outcome:
    """One replay of ``rows`` with ``signals`` under ``setting``."""
    t0 = rows[0].time
    fractions = tuple(Decimal(v) for v in setting.get("fill_fractions", "").split("/") if v)
    sim = KrakenSimulator(seed=1, tier=None, balances=wallet, fill_fractions=fractions, clock_start=t0)
    clock = TapeClock(sim)
    pair = sim.pair(pair_name)
    sim.engine.paths[pair.key].set(rows[0].price)
    outcome = Outcome(setting=",".join(f"{k}={v}" for k, v in setting.items()))
    with tempfile.TemporaryDirectory(prefix="execledger-tape-") as tmp:
        async with sim:
            base = Settings(  # the wallet holds the base for both legs: both rest on the venue (no price watcher here)
                data_dir=Path(tmp),
                database_url=None,
                default_timeout_s=float(setting.get("timeout_s", 300)),
                resting_leg="both",
            )
            settings = base.with_exchange(url=sim.rest_url, ws_url=sim.ws_url, key=sim.key, secret=sim.secret)
            with open_ledger(settings, clock=clock) as lg:
                exchange = KrakenExchange.from_settings(settings, tier=None)
                service = TradingService(lg.engine, exchange, ServiceConfig(deadman_enabled=False))
                try:
                    await _replay(sim, pair_name, rows, signals, setting, clock, lg, service, step)
                finally:
                    await exchange.close()
                _tally(outcome, lg.engine, rows[-1].price)
                outcome.timed_out = _timeouts(lg)
    return outcome


async def _settle(lg, service) -> None:
    for _ in range(SETTLE_ROUNDS):
        before = lg.app.recorder.max_notification_id()
        lg.engine.tick()
        await service.reconcile()
        if lg.app.recorder.max_notification_id() == before:
            return
    raise RuntimeError("the ledger did not settle")


async def _replay(sim, pair_name, rows, signals, setting, clock, lg, service, step: float) -> None:
    pending = list(signals)
    t0, end = rows[0].time, rows[-1].time
    index = 0
    last_settle = t0 - step
    while clock.t <= end:
        while index < len(rows) and rows[index].time <= clock.t:
            sim.set_mark_price(pair_name, rows[index].price, rows[index].volume)
            index += 1
        while pending and t0 + float(pending[0]["at"]) <= clock.t:
            signal = pending.pop(0)
            reference = Decimal(signal.get("limit_price") or sim.mark_price(pair_name))
            lg.engine.control.submit_signal({"pair": pair_name, **_bracket(signal, reference, setting)})
            last_settle = -1e18  # settle now
        if clock.t - last_settle >= step or index >= len(rows):
            sim.tick()
            await _settle(lg, service)
            last_settle = clock.t
        if index >= len(rows) and not pending:
            break
        following = [rows[index].time] if index < len(rows) else []
        if pending:
            following.append(t0 + float(pending[0]["at"]))
        clock.move_to(min([*following, clock.t + step]))


def _tally(outcome: Outcome, engine, last_price: Decimal) -> None:
    cash = Decimal(0)
    orders = list(engine.ledger.load_orders(everything=True))  # every order: the engine holds only live signals
    for order in orders:
        if order.role is OrderRole.ENTRY:
            outcome.entries += 1
            outcome.entries_filled += order.filled_quantity > 0
        else:
            outcome.legs[order.role.value] = outcome.legs.get(order.role.value, 0) + (order.filled_quantity > 0)
        for fill in order.fills.values():
            outcome.fills += 1
            outcome.fees += fill.fee
            if order.side is Side.BUY:
                outcome.bought += fill.quantity
                cash -= fill.quantity * fill.price
            else:
                outcome.sold += fill.quantity
                cash += fill.quantity * fill.price
    outcome.position = outcome.bought - outcome.sold
    closed = min(outcome.bought, outcome.sold)
    average_buy = _average(orders, Side.BUY)
    average_sell = _average(orders, Side.SELL)
    outcome.realised_pnl = (closed * (average_sell - average_buy) if closed else Decimal(0)) - outcome.fees
    outcome.marked_pnl = cash + outcome.position * last_price - outcome.fees


def _average(orders, side: Side) -> Decimal:
    qty = cost = Decimal(0)
    for order in orders:
        if order.side is side:
            for fill in order.fills.values():
                qty += fill.quantity
                cost += fill.quantity * fill.price
    return cost / qty if qty else Decimal(0)


def _timeouts(lg) -> int:
    """TimedOut decisions in the run's log."""
    notifications = lg.app.recorder.select_notifications(1, 1_000_000)
    return sum(1 for n in notifications if n.topic.endswith(".TimedOut"))


def table(outcomes: Iterable[Outcome], quote: str, base: str) -> str:
    outcomes = list(outcomes)
    rows = [
        ("setting", [o.setting or "(defaults)" for o in outcomes]),
        ("entries filled", [f"{o.entries_filled} of {o.entries}" for o in outcomes]),
        ("entries timed out", [str(o.timed_out) for o in outcomes]),
        ("fills", [str(o.fills) for o in outcomes]),
        ("legs filled (sl / tp / exit)", [_legs(o) for o in outcomes]),
        (f"bought / sold ({base})", [f"{_q(o.bought)} / {_q(o.sold)}" for o in outcomes]),
        (f"fees ({quote})", [_q(o.fees, 4) for o in outcomes]),
        (f"realised PnL ({quote})", [_q(o.realised_pnl, 4) for o in outcomes]),
        (f"position left ({base})", [_q(o.position) for o in outcomes]),
        (f"PnL marked at the last trade ({quote})", [_q(o.marked_pnl, 4) for o in outcomes]),
    ]
    labels = ["", *"AB"[: len(outcomes)]] if len(outcomes) <= 2 else ["", *map(str, range(len(outcomes)))]
    width = max(len(label) for label, _ in rows) + 2
    columns = [max(len(v) for v in values) for _, values in rows for values in [values]]
    col = max(max(columns), 12) + 2
    lines = [f"{labels[0]:<{width}}" + "".join(f"{h:<{col}}" for h in labels[1:])]
    lines += [f"{label:<{width}}" + "".join(f"{v:<{col}}" for v in values) for label, values in rows]
    return "\n".join(lines)


def _legs(o: Outcome) -> str:
    return " / ".join(str(o.legs.get(k, 0)) for k in ("stop_loss", "take_profit", "exit"))


def _q(d: Decimal, places: int = 8) -> str:
    text = f"{d:.{places}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


async def compare(args) -> list[Outcome]:
    settings = [parse_setting(s) for s in (args.a, args.b)]
    rows = load_tape(args.tape)
    signals = load_signals(Path(args.signals))
    probe = KrakenSimulator(tier=None)
    pair = probe.pair(args.pair)
    base_amount = args.base if args.base is not None else str(sum(Decimal(str(s["quantity"])) for s in signals))
    wallet = {pair.quote: args.quote, pair.base: base_amount}
    outcomes = []
    for setting in settings:
        outcome = await run_once(args.pair, rows, signals, setting, wallet, args.step)
        outcomes.append(outcome)
    first, last = rows[0], rows[-1]
    start, end = (datetime.fromtimestamp(r.time, UTC) for r in (first, last))
    span = f"{start:%Y-%m-%dT%H:%M:%SZ}..{end:%H:%M:%SZ}"
    print(f"tape {args.tape}  {pair.wsname}  {len(rows)} trades {span}  signals {len(signals)}")
    print(table(outcomes, probe.asset_names.get(pair.quote, pair.quote), probe.asset_names.get(pair.base, pair.base)))
    if args.json:
        Path(args.json).write_text(json.dumps([o.as_json() for o in outcomes], indent=2))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", required=True, help="the tape's pair, e.g. SOL/USD")
    parser.add_argument("--tape", required=True, help="Kraken trade-history CSV: a path or a shipped tape name")
    parser.add_argument("--signals", required=True, help="JSON list of signals with 'at' seconds")
    parser.add_argument("--a", default="", help="setting A, e.g. timeout_s=600,sl_pct=0.5,tp_pct=0.8")
    parser.add_argument("--b", default="", help="setting B")
    parser.add_argument("--quote", default="100000", help="quote balance of the wallet")
    parser.add_argument("--base", default=None, help="base balance (default: the sum of the signals' quantities)")
    parser.add_argument("--step", type=float, default=5.0, help="seconds of tape between settles (timer resolution)")
    parser.add_argument("--json", help="also write the outcomes to this file")
    args = parser.parse_args(argv)
    try:
        asyncio.run(compare(args))
    except (ValueError, KeyError, OSError) as exc:
        print(f"tape_compare: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
