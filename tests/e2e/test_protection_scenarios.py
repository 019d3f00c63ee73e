"""Issue 13: the nine ways a trader saw protection lapse, each replayed against the built-in simulator the way it
was reported, through the service's own workers (sender, WS v2 executions stream, REST Ticker, timers) on SQLite
and PostgreSQL. After each: the live protective legs equal the net position (``domain/position.py``) and no exit
sold more than the entry put into the account.

Scenarios 7 and 8 (a SIGKILLed service, a stepped wall clock) run real processes: see
``test_protection_processes.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal as D

import pytest

from execledger.application.policies import PolicyConfig
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.order import Order, State
from execledger.domain.position import entered, protection_gaps
from execledger.domain.values import OrderRole, OrderType, Side

XBT = "XBT/USD"  # the simulator starts XBT/USD at 67000.0


class Live:
    """The service's workers running around a SimHarness; ``until`` awaits a ledger condition commit by commit."""

    def __init__(self, h, **config):
        self.h = h
        fast = ServiceConfig(
            deadman_enabled=False,
            tick_interval_s=0.05,
            retry_min_s=0.05,
            retry_max_s=0.5,
            price_poll_s=0.1,
            reconcile_interval_s=3600,
        )
        self.service = TradingService(h.engine, h.exchange, replace(fast, **config))
        self.changed = asyncio.Event()
        h.engine.uow.add_listener(lambda committed: self.changed.set())
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Live:
        self.task = asyncio.create_task(self.service.run())
        await self._await(self.service.recovered.wait(), 15)
        assert self.service.recovered.is_set(), "the service did not recover within 15 s"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.service.stop()
        await asyncio.wait_for(self.task, 15)  # a worker that failed re-raises here

    async def _await(self, awaitable, timeout: float) -> None:
        waiter = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({waiter, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self.task in done:
            self.task.result()  # the service died: its error is the test's failure
            raise AssertionError("the service stopped")

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        """Wait until ``predicate()`` holds, looking again at every commit (and every 50 ms, for what the venue or
        the service's workers change without a commit); fail naming ``what`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            self.changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            await self._await(self.changed.wait(), min(remaining, 0.05))

    def signal(self, **fields) -> Order:
        result = self.h.engine.control.submit_signal({"pair": XBT, "side": "buy", "quantity": "0.01", **fields})
        self.service.wake()
        return result.order


def protected(h, entry: Order) -> bool:
    """The live legs work exactly the net position, and every one of them rests on the venue."""
    entry = h.order(entry)
    if not entry.brackets:
        return False
    rules = h.engine.contingencies.rules(entry)
    if protection_gaps(entry, h.engine.orders, rules.base, rules.ordermin):
        return False
    return all(leg.state is State.OPEN and not leg.amend_pending for leg in h.legs(entry, live=True))


def assert_protected(h, entry: Order, held: D) -> None:
    """Legs == net position in the ledger and on the venue's book; nothing over-exited."""
    entry = h.order(entry)
    rules = h.engine.contingencies.rules(entry)
    assert h.position(entry) == held, f"position {h.position(entry)}, expected {held}"
    assert protection_gaps(entry, h.engine.orders, rules.base, rules.ordermin) == []
    legs = {leg.cl_ord_id: leg for leg in h.legs(entry)}
    venue = [o for o in h.sim.orders() if o.request.cl_ord_id in legs]
    for role in (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT):
        resting = sum((o.remaining for o in venue if o.is_open and legs[o.request.cl_ord_id].role is role), D(0))
        assert resting <= held, f"{role.value}: {resting} rests on the venue against {held} held"
    sold = sum((o.vol_exec for o in venue), D(0))
    assert sold <= entered(entry, rules.base), f"the exits sold {sold}, the entry put in {entered(entry, rules.base)}"


def venue_legs(h, entry: Order) -> list:
    """The entry's exit orders open on the venue's book."""
    ids = {leg.cl_ord_id for leg in h.legs(entry)}
    return [o for o in h.sim.orders() if o.is_open and o.request.cl_ord_id in ids]


def market_exits(h, entry: Order) -> list[Order]:
    return [o for o in h.legs(entry) if o.order_type is OrderType.MARKET]


def add_orders(h, cl_ord_id: str | None = None) -> list:
    """The orders sent to the venue on either route: WS v2 ``add_order`` and REST AddOrder (oldest first)."""
    return sorted(h.sim.requests("add_order", cl_ord_id) + h.sim.requests("AddOrder", cl_ord_id), key=lambda r: r.time)


def refused(h, error: str) -> list:
    """The orders the venue refused with ``error``, on either route."""
    return [r for r in add_orders(h) if error in str(r.as_json())]


# --- 1 ------------------------------------------------------------------------------------------------------


async def test_a_nonce_another_client_pushed_ahead_delays_the_stop_but_never_drops_it(harness):
    """Scenario 1: another client on the key signs a call with a nonce 3 s ahead and the resting entry fills in
    that window. Every call of ours is refused ``EAPI:Invalid nonce`` until our nonce passes it; a nonce refusal
    means nothing was placed, so the stop is sent again (never a market exit) and rests once the window passes.
    Route ``rest``: nonces are REST's (WS v2 ``add_order`` carries a token instead), and REST AddOrder is the route
    whenever the executions socket is down."""
    h = await harness()
    h.exchange.order_entry = "rest"
    async with Live(h) as live:
        entry = live.signal(
            signal_id="nonce", order_type="limit", limit_price="66000", sl_price="65000", tp_price="69000"
        )
        await live.until(lambda: h.order(entry).state is State.OPEN, "the entry rests")
        await live.until(lambda: live.service.stream_healthy, "the executions stream up")
        h.sim.last_nonce[h.sim.key] = int((time.time() + 3) * 1_000_000)  # the adapter's nonce is in microseconds
        h.sim.set_mark_price(XBT, "65990")  # the entry fills inside the window
        await live.until(lambda: h.order(entry).state is State.FILLED, "the fill", timeout=20)
        await live.until(lambda: protected(h, entry), "the stop resting after the nonce window", timeout=30)
    refused = [r for r in h.sim.requests("AddOrder") if "Invalid nonce" in str(r.as_json())]
    assert refused, "the scenario did not happen: no AddOrder was refused for its nonce"
    assert market_exits(h, entry) == []
    [sl] = h.legs(entry, OrderRole.STOP_LOSS, live=True)
    assert sl.quantity == D("0.01") and sl.trigger_price == D("65000")
    assert_protected(h, entry, D("0.01"))


# --- 2 ------------------------------------------------------------------------------------------------------


async def test_a_fee_charged_in_the_coin_bought_leaves_legs_sized_to_what_is_held(harness):
    """Scenario 2: a market buy of 0.01 whose 0.26 % fee is charged in BTC leaves 0.009974 in the account; legs
    of 0.01 would be refused for funds. The stop rests for what the fill put in the account, and the take-profit
    the ledger holds sells exactly that when the price reaches it: the account ends at zero, not below."""
    h = await harness(taker_fee_pct=D("0.26"))
    h.sim.set_balance("XXBT", "0")
    h.sim.set_fee_default("base")
    async with Live(h) as live:
        entry = live.signal(signal_id="fcib", order_type="market", sl_price="65000", tp_price="69000")
        await live.until(lambda: protected(h, entry), "the stop resting", timeout=20)
        fill = next(iter(h.order(entry).fills.values()))
        assert fill.fee_asset == "XXBT" and fill.fee == D("0.000026")
        [sl] = h.legs(entry, OrderRole.STOP_LOSS, live=True)
        assert sl.quantity == D("0.009974") and [o.remaining for o in venue_legs(h, entry)] == [D("0.009974")]
        assert_protected(h, entry, D("0.009974"))
        h.sim.set_mark_price(XBT, "69010")
        await live.until(lambda: h.position(entry) == 0 and not h.legs(entry, live=True), "the take-profit exit")
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    assert tp.filled_quantity == D("0.009974")
    assert add_orders(h) and not refused(h, "Insufficient funds")
    assert h.sim.balances()["XXBT"] == 0
    assert_protected(h, entry, D("0"))


# --- 3 ------------------------------------------------------------------------------------------------------


async def test_a_negative_dust_balance_shrinks_the_legs_to_what_the_account_holds(harness):
    """Scenario 3: XXBT stood at -0.00000001 before a market buy of 0.01, so the account holds 0.00999999. The
    stop of 0.01 is refused for funds: the balance is read, the shortfall recorded, and the stop sent again at
    what is held; no market exit."""
    h = await harness()
    h.sim.set_balance("XXBT", "-0.00000001")
    async with Live(h) as live:
        entry = live.signal(signal_id="dust", order_type="market", sl_price="65000", tp_price="69000")
        await live.until(lambda: protected(h, entry), "the stop resting at what is held", timeout=20)
    assert h.sim.balances()["XXBT"] == D("0.00999999")
    [sl] = h.legs(entry, OrderRole.STOP_LOSS, live=True)
    assert sl.quantity == D("0.00999999") and [o.remaining for o in venue_legs(h, entry)] == [D("0.00999999")]
    assert market_exits(h, entry) == []
    assert_protected(h, entry, D("0.00999999"))


# --- 4 ------------------------------------------------------------------------------------------------------


async def test_with_no_coin_to_spare_the_take_profit_is_held_by_the_ledger_and_fires_on_the_price(harness):
    """Scenario 4: no XBT before a market buy of 0.01 with a stop and a take-profit. Kraken holds the funds of the
    untriggered stop, so a take-profit beside it would be refused: the ledger holds it on the public price (REST
    Ticker here) and, when the price reaches it, cancels the stop and sells what is held at market."""
    h = await harness()
    h.sim.set_balance("XXBT", "0")
    async with Live(h) as live:
        entry = live.signal(signal_id="tp", order_type="market", sl_price="65000", tp_price="69000")
        await live.until(lambda: protected(h, entry), "the stop resting", timeout=20)
        assert [o.request.ordertype for o in venue_legs(h, entry)] == ["stop-loss"]
        assert h.order(entry).brackets[-1].emulated == {"take_profit": D("69000")}
        assert_protected(h, entry, D("0.01"))
        h.sim.set_mark_price(XBT, "69010")
        await live.until(lambda: h.position(entry) == 0, "the take-profit exit", timeout=20)
        await live.until(lambda: not h.legs(entry, live=True), "the stop canceled", timeout=20)
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    assert tp.order_type is OrderType.MARKET and tp.state is State.FILLED and tp.filled_quantity == D("0.01")
    assert sl.state is State.CANCELED and sl.filled_quantity == 0
    assert add_orders(h) and not refused(h, "Insufficient funds")
    assert h.sim.balances()["XXBT"] == 0
    assert_protected(h, entry, D("0"))


# --- 5 ------------------------------------------------------------------------------------------------------


async def test_a_tick_size_changed_on_the_venue_re_rounds_the_legs_instead_of_selling(harness):
    """Scenario 5: the venue's AssetPairs now says XBT/USD has pair_decimals 0 (tick 1) while the ledger still
    trades by 1 decimal; sl 48000.5 and tp 52000.5 are refused ``Invalid price``. The rules are reloaded and the
    legs sent again rounded away from the market (stop 48000, take-profit 52001): the position is not sold."""
    h = await harness(policy=PolicyConfig(resting_leg="both"))
    h.sim.set_mark_price(XBT, "50000")
    async with Live(h) as live:
        h.sim.set_asset_pair(XBT, {"pair_decimals": 0})  # after the service loaded the rules at its start
        entry = live.signal(signal_id="tick", order_type="market", sl_price="48000.5", tp_price="52000.5")
        await live.until(lambda: protected(h, entry), "both legs resting, re-rounded", timeout=20)
    assert refused(h, "Invalid price"), "the scenario did not happen: no leg was refused for its price"
    prices = {o.role.value: o.trigger_price for o in h.legs(entry, live=True)}
    assert prices == {"stop_loss": D("48000"), "take_profit": D("52001")}
    assert market_exits(h, entry) == []
    assert h.engine.contingencies.rules(h.order(entry)).pair_decimals == 0
    assert_protected(h, entry, D("0.01"))


# --- 6 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["ws", "rest"])
async def test_a_rate_limited_entry_is_sent_again_not_rejected(harness, route):
    """Scenario 6: one ``EOrder:Rate limit exceeded`` on an entry's AddOrder (WS ``add_order`` or REST) executed
    nothing: the entry is sent again when the counter allows (within the signal's maximum age), fills and is
    protected."""
    h = await harness()
    h.exchange.order_entry = route
    method = "add_order" if route == "ws" else "AddOrder"
    h.sim.inject_fault(method, "order_rate_limit")
    async with Live(h) as live:
        await live.until(lambda: live.service.stream_healthy, "the executions stream up")
        entry = live.signal(signal_id="rate", order_type="market", sl_price="65000", tp_price="69000")
        await live.until(lambda: protected(h, entry), "the entry filled and protected", timeout=20)
    sent = h.sim.requests(method, h.order(entry).cl_ord_id)
    assert len(sent) == 2, "refused once, then sent again"
    assert len(add_orders(h, h.order(entry).cl_ord_id)) == 2
    entry = h.order(entry)
    assert entry.state is State.FILLED and entry.filled_quantity == D("0.01")
    names = [e.name for e in h.engine.ledger.order_history(entry.id)]
    assert "Rejected" not in names
    assert_protected(h, entry, D("0.01"))


# --- 9 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["ws", "rest"])
async def test_a_held_reply_blocks_no_other_call_so_the_sibling_is_canceled_before_it_can_fill(harness, route):
    """Scenario 9: an entry fills in three increments (one stop and one take-profit, grown in place: not six
    orders); then the venue holds another entry's AddOrder for 15 s. Meanwhile the first bracket's stop fills: the
    take-profit's cancel goes out at once (not behind the held call), so the take-profit never fills too and the
    account never sells 0.02 against a 0.01 entry. On either route: a held ``add_order`` holds neither the socket
    nor the REST calls."""
    h = await harness(fill_fractions=(D("0.3"), D("0.3")), policy=PolicyConfig(resting_leg="both"))
    h.exchange.order_entry = route
    async with Live(h) as live:
        await live.until(lambda: live.service.stream_healthy, "the executions stream up")
        entry = live.signal(
            signal_id="held", order_type="limit", limit_price="66000", sl_price="65000", tp_price="69000"
        )
        await live.until(lambda: h.order(entry).state is State.OPEN, "the entry rests")
        for filled in ("0.003", "0.006", "0.01"):
            h.sim.set_mark_price(XBT, "65990")
            await live.until(
                lambda f=filled: h.order(entry).filled_quantity == D(f) and protected(h, entry),
                f"{filled} filled and protected",
            )
            h.sim.set_mark_price(XBT, "66500")
        assert len(venue_legs(h, entry)) == 2, "one stop and one take-profit, grown in place"
        assert_protected(h, entry, D("0.01"))

        h.sim.inject_fault("add_order" if route == "ws" else "AddOrder", "hold_request", seconds=15)
        other = live.signal(signal_id="other", order_type="limit", limit_price="60000")
        await live.until(lambda: h.order(other).state is State.SUBMITTING, "the other entry's AddOrder in flight")
        h.sim.set_mark_price(XBT, "64990")  # the stop triggers and fills at the venue
        await live.until(lambda: h.position(entry) == 0, "the stop's fill")
        await live.until(lambda: not venue_legs(h, entry), "the take-profit canceled on the venue", timeout=10)
        assert h.order(other).state is State.SUBMITTING, "the held AddOrder had not been answered yet"
        h.sim.set_mark_price(XBT, "69010")  # a take-profit still resting would fill now
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    assert tp.state is State.CANCELED and tp.filled_quantity == 0
    sold = sum((o.vol_exec for o in h.sim.orders() if o.side is Side.SELL), D(0))
    assert sold == D("0.01")
    assert_protected(h, entry, D("0"))
