"""Room on Kraken's per-pair trading counter for the legs of entries in flight (REFERENCE.md 5.2: Starter holds 60
AddOrders a pair, decaying 1/s). A burst of bracketed market entries must not spend the room that their own
stop-losses need a moment later: an entry goes only while the counter keeps room for itself, its legs and the legs
of the entries in flight (``TradingService._legs_owed``); legs take the room first. Break test 2026-12-02: 60
market entries took the whole Starter counter and their 60 stops then left one a second, the last 61 s after its
fill (p50 31 s without a stop)."""

from __future__ import annotations

from execledger.application.engine import EngineConfig
from execledger.application.policies import PolicyConfig
from execledger.domain.order import State
from execledger.domain.values import OrderRole
from tests.fakes import FakeExchange
from tests.harness import Harness

ROOM = 60  # Kraken Starter's per-pair maximum
PAIR = "XXBTZUSD"  # XBT/USD as the ledger keys it (AssetPairs)


class CountedExchange(FakeExchange):
    """The fake venue with a per-pair trading counter that does not decay while the test sends (a burst within one
    second) and, for admission, lets one more AddOrder out each second ahead: each AddOrder takes one; an AddOrder
    over the maximum is refused, as Kraken refuses it."""

    def __init__(self, clock, room: int = ROOM):
        super().__init__(clock)
        self.room = room
        self.refused = 0

    def order_capacity(self, pair, within_s):
        return self.room + int(within_s)  # decays 1/s

    async def wait_for_order_capacity(self, pair, max_wait_s=None, *, urgent=False, reserve=None) -> bool:
        return self.room >= 1 + (0 if urgent or reserve is None else reserve())  # the counter never decays here

    async def place(self, request, *, still_wanted=None):
        if self.room < 1:
            self.refused += 1
            raise AssertionError("an AddOrder past the counter's maximum")
        self.room -= 1
        return await super().place(request, still_wanted=still_wanted)


def bracketed_market_buy(n: int) -> dict:
    return {
        "signal_id": f"burst-{n}",
        "pair": "XBT/USD",
        "side": "buy",
        "order_type": "market",
        "quantity": "1",
        "sl_price": "90",
        "tp_price": "120",
    }


async def test_a_burst_of_bracketed_market_entries_leaves_the_room_their_legs_need(ledger, clock):
    h = Harness(ledger, clock, EngineConfig(policy=PolicyConfig(resting_leg="both")))  # both legs rest
    h.venue = h.service.exchange = CountedExchange(clock)
    entries = [h.engine.control.submit_signal(bracketed_market_buy(n)).order for n in range(30)]
    await h.service.send_pending()
    await h.service.wait_for_calls()
    sent = [e for e in entries if h.engine.orders[e.id].txid is not None]
    assert len(sent) == ROOM // 3, len(sent)  # each entry keeps room for its stop-loss and take-profit
    for entry in sent:
        h.venue.fill(h.txid(entry), "1", "100")
    for report in h.venue.drain():  # the fills: each decides its legs, sent at once while the room lasts
        await h.service.apply(report)
    await h.service.send_pending()
    await h.service.wait_for_calls()
    # Every filled entry has both legs at the venue, sent at once: the room was there.
    at_venue = {r.client_order_id for r in h.venue.requests.values()}
    for entry in sent:
        legs = h.legs(entry)
        assert {leg.role for leg in legs} == {OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT}
        assert all(leg.cl_ord_id in at_venue for leg in legs), [(leg.role, leg.state) for leg in legs]
    assert h.venue.room == 0 and h.venue.refused == 0
    waiting = [e for e in entries if h.engine.orders[e.id].state is State.PENDING_SUBMIT]
    assert len(waiting) == 30 - ROOM // 3  # the rest wait for the counter to decay


async def test_admission_counts_the_legs_of_the_entries_waiting(ledger, clock):
    """Within admission's horizon (0.8 of a signal's maximum age, 48 s) the counter lets 60 + 48 = 108 AddOrders
    out: 36 bracketed entries (3 AddOrders each), not 108 entries whose legs would then wait."""
    h = Harness(ledger, clock)
    h.venue = h.service.exchange = CountedExchange(clock)
    horizon_room = ROOM + int(h.engine.config.signal_max_age_s * 0.8)
    accepted = 0
    while h.service._venue_unavailable(PAIR) is None:
        h.engine.control.submit_signal(bracketed_market_buy(accepted))
        accepted += 1
    assert accepted == (horizon_room - 1) // 3 + 1, accepted
    why = h.service._venue_unavailable(PAIR)
    assert "rate limit" in why and "protective legs" in why, why


async def test_a_resting_limit_entry_keeps_no_room_for_legs_it_may_never_need(ledger, clock):
    h = Harness(ledger, clock)
    h.venue = h.service.exchange = CountedExchange(clock)
    resting = h.engine.control.submit_signal({**bracketed_market_buy(0), "order_type": "limit", "limit_price": "100"})
    await h.service.send_pending()
    await h.service.wait_for_calls()
    assert h.engine.orders[resting.order.id].state is State.OPEN
    assert h.service._legs_owed(PAIR) == 0
    market = h.engine.control.submit_signal(bracketed_market_buy(1))
    await h.service.send_pending()
    await h.service.wait_for_calls()
    assert h.engine.orders[market.order.id].state is State.OPEN  # acknowledged, not filled yet: it owes 2
    assert h.service._legs_owed(PAIR) == 2
