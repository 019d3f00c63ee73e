"""A trading harness for process-manager tests: ledger + engine + service around a FakeExchange."""

from __future__ import annotations

from decimal import Decimal

from execledger.application.engine import EngineConfig, ExecutionEngine, ReportPublisher
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.order import Order
from execledger.domain.position import exits_of, position_of, protection_gaps
from execledger.domain.values import OrderRole
from tests.fakes import FakeExchange


def limit_buy(signal_id: str, **fields) -> dict:
    """A limit-buy signal without brackets (1 XBT/USD at 100), ``fields`` overriding."""
    return {
        "signal_id": signal_id,
        "pair": "XBT/USD",
        "side": "buy",
        "order_type": "limit",
        "quantity": "1",
        "limit_price": "100",
        **fields,
    }


class Harness:
    def __init__(self, ledger, clock, config: EngineConfig | None = None):
        self.clock = clock
        self.reports = []
        self.engine = ExecutionEngine(ledger, config, listeners=[ReportPublisher(ledger, self.reports.append)])
        self.venue = FakeExchange(clock)
        self.service = TradingService(self.engine, self.venue, ServiceConfig(deadman_enabled=False, retry_min_s=0.0))

    async def settle(self, rounds: int = 20) -> None:
        """Deliver every queued venue report and run the workers until nothing is left to do."""
        for _ in range(rounds):
            reports = self.venue.drain()
            for report in reports:
                await self.service.apply(report)
            self.engine.tick()
            await self.service.resolve_unknowns()
            sent = await self.service.send_pending()
            if not reports and not sent and self.venue.queue.empty():
                return
        raise AssertionError("the harness did not settle")

    async def signal(self, **fields) -> Order:
        result = self.engine.control.submit_signal(
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
        entry = self.engine.orders[entry.id]
        legs = [o for o in exits_of(entry, self.engine.orders) if role is None or o.role is role]
        return [o for o in legs if not o.is_terminal] if live_only else legs

    def position(self, entry: Order) -> Decimal:
        """What is still held (the one position rule, ``domain/position.py``)."""
        return position_of(self.engine.orders[entry.id], self.engine.orders, self._base(entry)).net

    def _base(self, entry: Order) -> str:
        return self.engine.contingencies.rules(entry).base

    def assert_legs_match_position(self, entry: Order) -> None:
        """Every live stop and take-profit together cover exactly the open position (never more, never a gap)."""
        entry = self.engine.orders[entry.id]
        rules = self.engine.contingencies.rules(entry)
        assert protection_gaps(entry, self.engine.orders, rules.base, rules.ordermin) == []
        venue_live = {o.client_order_id for o in self.venue.live()}
        for leg in self.legs(entry):
            if leg.is_terminal:
                assert leg.cl_ord_id not in venue_live, (
                    f"{leg.role.value} {leg.id} is terminal here but live on the venue"
                )
