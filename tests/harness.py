"""A trading harness for process-manager tests: ledger + engine + service around a FakeExchange."""

from __future__ import annotations

from decimal import Decimal

from execledger.application.engine import EngineConfig, ExecutionEngine
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.order import Order
from execledger.domain.values import OrderRole
from tests.fakes import FakeExchange


class Harness:
    def __init__(self, ledger, clock, config: EngineConfig | None = None):
        self.clock = clock
        self.reports = []
        self.engine = ExecutionEngine(ledger, config, publish=self.reports.append)
        self.venue = FakeExchange(clock)
        self.service = TradingService(self.engine, self.venue, ServiceConfig(deadman_enabled=False))

    async def settle(self, rounds: int = 20) -> None:
        """Deliver every queued venue observation and run the workers until nothing is left to do."""
        for _ in range(rounds):
            observations = self.venue.drain()
            for obs in observations:
                await self.service.apply(obs)
            self.engine.tick()
            await self.service.resolve_unknowns()
            sent = await self.service.send_pending()
            if not observations and not sent and self.venue.queue.empty():
                return
        raise AssertionError("the harness did not settle")

    async def signal(self, **fields) -> Order:
        result = self.engine.submit_signal(
            {
                "signal_id": "sig",
                "pair": "XBT/USD",
                "side": "buy",
                "order_type": "limit",
                "quantity": "1",
                "limit_price": "100",
                "sl_price": "90",
                "tp_price": "120",
                **fields,
            }
        )
        await self.settle()
        return self.engine.orders[result.order.id]

    def txid(self, order: Order) -> str:
        return self.engine.orders[order.id].txid

    def legs(self, entry: Order, role: OrderRole | None = None, live_only: bool = False) -> list[Order]:
        legs = [o for o in self.engine.orders.values() if o.parent_id == entry.id and (role is None or o.role is role)]
        return [o for o in legs if not o.is_terminal] if live_only else legs

    def position(self, entry: Order) -> Decimal:
        """Entry fills minus exit fills: what is still held."""
        entry = self.engine.orders[entry.id]
        return entry.filled_quantity - sum((o.filled_quantity for o in self.legs(entry)), Decimal(0))

    def assert_legs_match_position(self, entry: Order) -> None:
        """Every live stop and take-profit together cover exactly the open position (never more, never a gap)."""
        pos = self.position(entry)
        for role in (OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT):
            working = sum((o.remaining_quantity for o in self.legs(entry, role, live_only=True)), Decimal(0))
            assert working == pos, f"{role.value} legs work {working} but the position is {pos}"
        venue_live = {o.cl_ord_id for o in self.venue.live()}
        for leg in self.legs(entry):
            if leg.is_terminal:
                assert leg.cl_ord_id not in venue_live, (
                    f"{leg.role.value} {leg.id} is terminal here but live on the venue"
                )
