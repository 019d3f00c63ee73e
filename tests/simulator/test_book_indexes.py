"""The matching core's indexes: a price move looks only at the orders it crosses, and the incremental indexes
(funds held, open orders by cl_ord_id / userref / pair) always equal what a full scan would compute."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execledger.domain.values import ZERO
from execledger.infrastructure.simulator import KrakenSimulator
from execledger.infrastructure.simulator.engine import Exchange
from execledger.infrastructure.simulator.errors import KrakenError
from execledger.infrastructure.simulator.orderentry import parse_add_order

from .conftest import FROZEN_AT

D = Decimal


def venue(**fields) -> KrakenSimulator:
    sim = KrakenSimulator(
        seed=1, clock_start=FROZEN_AT, tier=None, balances={"ZUSD": "100000000", "XXBT": "1000"}, **fields
    )
    sim.set_mark_price("XBTUSD", "60000")
    return sim


def place(sim: KrakenSimulator, **params):
    params = {"pair": "XBTUSD", "volume": "0.01", **params}
    return sim.engine.place(sim.key, parse_add_order(params, sim.find_pair, sim.clock.now(), sim.last_price))


def test_a_price_move_touches_only_the_orders_it_crosses(monkeypatch):
    sim = venue()
    for i in range(2000):
        place(sim, type="buy", ordertype="limit", price=str(50000 + i))
        place(sim, type="sell", ordertype="stop-loss", price=str(40000 + i))
    worked: list[str] = []
    real = Exchange._work
    monkeypatch.setattr(
        Exchange, "_work", lambda self, order, fresh: (worked.append(order.txid), real(self, order, fresh))
    )
    sim.set_mark_price("XBTUSD", "55000")  # crosses nothing: no order is even looked at
    assert worked == []
    sim.set_mark_price("XBTUSD", "51990")  # the ten buys at 51,990 .. 51,999
    assert len(worked) == 10 and all(o.status == "closed" for o in sim.orders() if o.txid in worked)
    worked.clear()
    sim.set_mark_price("XBTUSD", "41994.5")  # the five stops at 41,995 .. 41,999, plus the buys in between
    stops = [o for o in sim.orders() if o.txid in worked and str(o.request.ordertype) == "stop-loss"]
    assert len(stops) == 5 and all(o.status == "closed" for o in stops)


def full_scan_holds(sim: KrakenSimulator) -> dict[str, Decimal]:
    held: dict[str, Decimal] = {}
    for order in sim.engine.account(sim.key).orders.values():
        if order.is_open and order.hold_asset:
            held[order.hold_asset] = held.get(order.hold_asset, ZERO) + order.hold_amount
    return held


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("limit"), st.sampled_from(["buy", "sell"]), st.integers(55000, 65000), st.integers(0, 5)),
        st.tuples(st.just("stop"), st.sampled_from(["buy", "sell"]), st.integers(55000, 65000), st.integers(0, 5)),
        st.tuples(st.just("move"), st.integers(54000, 66000)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("amend"), st.integers(0, 50), st.integers(1, 30)),
        st.tuples(st.just("userref_cancel"), st.integers(0, 5)),
        st.tuples(st.just("holds"), st.booleans()),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ACTIONS)
def test_incremental_indexes_equal_a_full_scan(actions):
    sim = venue(fill_fractions=(D("0.5"),))
    n = 0
    for action in actions:
        kind = action[0]
        try:
            if kind in ("limit", "stop"):
                _, side, price, userref = action
                n += 1
                ordertype = "limit" if kind == "limit" else "stop-loss"
                place(sim, type=side, ordertype=ordertype, price=str(price), userref=str(userref), cl_ord_id="")
            elif kind == "move":
                sim.set_mark_price("XBTUSD", str(action[1]))
            elif kind == "cancel":
                orders = sim.orders()
                if orders:
                    sim.engine.cancel([orders[action[1] % len(orders)]])
            elif kind == "amend":
                orders = [o for o in sim.orders() if o.is_open]
                if orders:
                    sim.engine.amend(orders[action[1] % len(orders)], order_qty=D(action[2]) / 1000)
            elif kind == "userref_cancel":
                sim.engine.cancel(sim.engine.cancel_targets(sim.key, str(action[1])))
            else:
                sim.set_hold_untriggered(action[1])
        except KrakenError:
            pass
        account = sim.engine.account(sim.key)
        scanned = full_scan_holds(sim)
        for asset in set(scanned) | set(account.held):
            assert account.held.get(asset, ZERO) == scanned.get(asset, ZERO), asset
        open_orders = [o for o in account.orders.values() if o.is_open]
        assert list(account.open.values()) == open_orders
        assert account.open_per_pair == Counter(o.pair.key for o in open_orders)
        by_userref = {u: set(group) for u, group in account.open_by_userref.items()}
        expected: dict[int, set[str]] = {}
        for order in open_orders:
            if order.request.userref is not None:
                expected.setdefault(order.request.userref, set()).add(order.txid)
        assert by_userref == expected
