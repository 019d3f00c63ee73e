"""End-to-end harness: the engine and its workers, the real Kraken adapter, the in-process simulator.

Time is one frozen clock shared by the ledger and the simulator (AddOrder deadlines are checked by the venue).
``settle()`` drives the REST path (public prices, reconcile, resolve, send) until the ledger stops changing, so
every test is deterministic; the WS path has its own test that awaits reports from the stream.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from execledger.application.engine import EngineConfig, ExecutionEngine, ReportPublisher
from execledger.application.ledger import ExecutionLedger
from execledger.application.policies import PolicyConfig
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.order import Order
from execledger.domain.position import exits_of, position_of, protection_gaps
from execledger.domain.values import OrderRole, Side
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.pairs import load_default_pairs
from execledger.infrastructure.simulator import KrakenSimulator
from tests.conftest import ManualClock

FROZEN = 1_790_000_000.0


class SimHarness:
    def __init__(
        self,
        sim: KrakenSimulator,
        exchange: KrakenExchange,
        ledger: ExecutionLedger,
        clock: ManualClock,
        policy: PolicyConfig,
    ):
        self.sim, self.exchange, self.clock = sim, exchange, clock
        self.reports = []
        self.engine = ExecutionEngine(
            ledger, EngineConfig(policy=policy), listeners=[ReportPublisher(ledger, self.reports.append)]
        )
        self.service = TradingService(self.engine, exchange, ServiceConfig(deadman_enabled=False))
        self.initial_balances = dict(sim.balances())

    async def settle(self, rounds: int = 30) -> None:
        """Reconcile, resolve and send until nothing changes (what REST polling converges to)."""
        for _ in range(rounds):
            before = self.engine.ledger.app.recorder.max_notification_id()
            self.engine.tick()
            await self.service.poll_prices(self.engine.contingencies.watched_pairs())  # the price watcher's REST path
            await self.service.reconcile()
            if self.engine.ledger.app.recorder.max_notification_id() == before:
                return
        raise AssertionError("the ledger did not settle")

    async def signal(self, **fields) -> Order:
        result = self.engine.control.submit_signal(
            {"pair": "XBT/USD", "side": "buy", "order_type": "limit", "quantity": "0.01", **fields}
        )
        await self.settle()
        return self.engine.orders[result.order.id]

    async def price(self, pair: str, value: str) -> None:
        self.sim.set_mark_price(pair, value)
        await self.settle()

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.sim.advance_time(seconds)
        await self.settle()

    def order(self, order: Order) -> Order:
        return self.engine.orders[order.id]

    def legs(self, entry: Order, role: OrderRole | None = None, live: bool = False) -> list[Order]:
        found = [o for o in exits_of(self.order(entry), self.engine.orders) if role is None or o.role is role]
        return [o for o in found if not o.is_terminal] if live else found

    def position(self, entry: Order) -> Decimal:
        """What is still held (the one position rule, ``domain/position.py``)."""
        rules = self.engine.contingencies.rules(entry)
        return position_of(self.order(entry), self.engine.orders, rules.base).net

    def assert_consistent(self) -> None:
        """The venue's books and balances agree with the ledger, and no leg outlives its position."""
        venue = {o.txid: o for o in self.sim.orders()}
        every = {o.id: o for o in self.engine.ledger.load_orders(everything=True)}  # finished signals are retired
        ours = {o.txid: o for o in every.values() if o.txid}
        assert set(venue) == set(ours), "orders known to one side only"
        for txid, order in ours.items():
            v = venue[txid]
            assert v.vol_exec == order.filled_quantity, (
                f"{order.role.value} {txid}: venue {v.vol_exec} vs ledger {order.filled_quantity}"
            )
            assert v.is_open == (not order.is_terminal), (
                f"{order.role.value} {txid}: venue {v.status} vs ledger {order.state.value}"
            )
        expected = dict(self.initial_balances)
        for order in every.values():
            rules = self.engine.contingencies.rules(order)
            for fill in order.fills.values():
                sign = 1 if order.side is Side.BUY else -1
                expected[rules.base] = expected.get(rules.base, Decimal(0)) + sign * fill.quantity
                expected[rules.quote] = (
                    expected.get(rules.quote, Decimal(0)) - sign * fill.quantity * fill.price - fill.fee
                )
        actual = self.sim.balances()
        for asset, amount in expected.items():
            assert actual.get(asset, Decimal(0)) == amount, f"{asset}: venue {actual.get(asset)} vs ledger {amount}"
        for entry in (o for o in every.values() if o.role is OrderRole.ENTRY):
            rules = self.engine.contingencies.rules(entry)
            assert protection_gaps(entry, every, rules.base, rules.ordermin) == []


@pytest.fixture
async def harness(settings):
    """``h = await harness(fill_fractions=(...), policy=PolicyConfig(...))``: a started SimHarness, closed after."""
    from execledger.infrastructure.eventstore import open_orders_app

    created: list[SimHarness] = []

    async def make(policy: PolicyConfig | None = None, **sim_fields) -> SimHarness:
        sim = await KrakenSimulator(seed=7, clock_start=FROZEN, **{"tier": None, **sim_fields}).start()
        s = settings.with_exchange(url=sim.rest_url, ws_url=sim.ws_url, key=sim.key, secret=sim.secret)
        clock = ManualClock(datetime.fromtimestamp(FROZEN, UTC))
        ledger = ExecutionLedger(open_orders_app(s), load_default_pairs(), clock)
        exchange = KrakenExchange.from_settings(s, tier=None)  # the simulator models no rate limits here
        h = SimHarness(sim, exchange, ledger, clock, policy or PolicyConfig())
        created.append(h)
        return h

    yield make
    for h in created:
        await h.exchange.close()
        await h.sim.stop()
        h.engine.ledger.app.close()
