"""Process managers end to end against the in-memory exchange: fills, timeouts, brackets, OCO, HALT, unknowns."""

from dataclasses import replace
from decimal import Decimal as D

import pytest

from execledger.application.engine import EngineConfig
from execledger.application.policies import LastPrice, PolicyConfig
from execledger.application.ports import AmendResult, Correction, ErrorClass, PlaceResult, PlaceStatus
from execledger.domain.order import OrderStatus, State
from execledger.domain.trading_state import TradingHalted, TradingMode
from execledger.domain.values import OrderRole
from tests.harness import Harness


@pytest.fixture
def h(ledger, clock):
    """Both legs rest on the venue (an account whose venue does not hold the base for a stop): the OCO mechanics."""
    return Harness(ledger, clock, EngineConfig(policy=PolicyConfig(default_timeout_s=300, resting_leg="both")))


@pytest.fixture
def hd(ledger, clock):
    """The default: the stop-loss rests, the ledger holds the take-profit on the public price."""
    return Harness(ledger, clock, EngineConfig(policy=PolicyConfig(default_timeout_s=300)))


def names(h, order):
    return [e.name for e in h.engine.ledger.order_history(order.id)]


async def test_limit_entry_is_submitted_once_and_acknowledged(h):
    entry = await h.signal()
    assert entry.state is State.OPEN and entry.txid
    assert names(h, entry) == ["Placed", "Submitted", "Acknowledged"]
    assert h.venue.add_order_calls[entry.cl_ord_id] == 1
    assert [r.order_status for r in h.reports] == ["PENDING_SUBMIT", "SUBMITTING", "OPEN"]


async def test_partial_fill_then_timeout_cancels_rest_and_brackets_the_filled_part(h):
    entry = await h.signal(timeout_s=60)
    h.venue.fill(h.txid(entry), "0.4", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    assert sl.quantity == tp.quantity == D("0.4") and sl.side.value == "sell" and sl.trigger_price == D("90")
    h.clock.advance(59)
    await h.settle()
    assert h.engine.orders[entry.id].state is State.OPEN  # not yet
    h.clock.advance(1)
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.CANCELED and entry.filled_quantity == D("0.4")
    history = h.engine.ledger.order_history(entry.id)
    timed_out = next(e for e in history if e.name == "TimedOut")
    assert (timed_out.data["age_s"], timed_out.data["threshold_s"], timed_out.data["rule"]) == (
        60.0,
        60.0,
        "signal.timeout_s",
    )
    h.assert_legs_match_position(entry)


async def test_default_timeout_from_config_when_signal_has_none(h):
    entry = await h.signal()
    h.clock.advance(300)
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.CANCELED
    assert (
        next(e for e in h.engine.ledger.order_history(entry.id) if e.name == "TimedOut").data["rule"]
        == "config.default_timeout_s"
    )


async def test_timeout_cancel_refused_when_filled_part_is_below_minimum(h):
    entry = await h.signal(quantity="0.001", limit_price="60000", sl_price="59000", tp_price="61000", timeout_s=30)
    h.venue.fill(h.txid(entry), "0.00001", "60000")  # below ordermin 0.00005: unsellable if the rest is canceled
    await h.settle()
    h.clock.advance(31)
    await h.settle()
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.OPEN and not entry.cancel_requested
    deferred = [e for e in h.engine.ledger.order_history(entry.id) if e.name == "Deferred"]
    rules = [e.reason["rule"] for e in deferred]
    assert rules.count("timeout_cancel_refused") == 1  # recorded once, not on every tick
    assert "bracket_below_minimum" in rules


async def test_three_increments_grow_one_stop_and_one_take_profit_by_amend(h):
    """Issue 13, scenario 9: three partial fills used to leave six resting exit orders; one of each, amended."""
    entry = await h.signal(quantity="0.3", limit_price="60000", sl_price="59000", tp_price="61000")
    for qty in ("0.1", "0.1", "0.1"):
        h.venue.fill(h.txid(entry), qty, "60000")
        await h.settle()
        h.assert_legs_match_position(entry)
    entry = h.engine.orders[entry.id]
    assert entry.status is OrderStatus.FILLED and [b.quantity for b in entry.brackets] == [D("0.3")]
    legs = h.legs(entry)
    assert sorted(o.role.value for o in legs) == ["stop_loss", "take_profit"]
    assert all(o.state is State.OPEN and o.quantity == D("0.3") for o in legs)
    assert all(h.venue.amend_calls[o.txid] == 2 for o in legs) and len(h.venue.live()) == 2
    rules = [e.reason["rule"] for o in legs for e in h.engine.ledger.order_history(o.id) if e.name == "AmendRequested"]
    assert rules == ["bracket_grow_amend"] * 4


async def test_increments_below_minimum_accumulate_until_they_can_be_protected(h):
    entry = await h.signal(quantity="0.0001", limit_price="60000", sl_price="59000", tp_price="61000")
    h.venue.fill(h.txid(entry), "0.00003", "60000")
    await h.settle()
    assert h.legs(entry) == []  # 0.00003 < ordermin 0.00005
    h.venue.fill(h.txid(entry), "0.00003", "60000")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    assert sl.quantity == D("0.00006")  # both increments in one bracket
    h.venue.fill(h.txid(entry), "0.00004", "60000")  # below the minimum on its own: the legs grow by it
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.FILLED and [b.quantity for b in entry.brackets] == [D("0.0001")]
    assert h.engine.orders[sl.id].quantity == D("0.0001")
    h.assert_legs_match_position(entry)


async def test_stop_hit_cancels_take_profit(h):
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    h.venue.fill(h.txid(sl), "1", "89.5")
    await h.settle()
    assert h.engine.orders[tp.id].state is State.CANCELED
    assert h.position(entry) == 0
    h.assert_legs_match_position(entry)
    cancel = next(e for e in h.engine.ledger.order_history(tp.id) if e.name == "CancelRequested")
    assert cancel.reason["rule"] == "oco_cancel_sibling"


async def test_take_profit_hit_cancels_stop(h):
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    h.venue.fill(h.txid(tp), "1", "120")
    await h.settle()
    assert h.engine.orders[sl.id].state is State.CANCELED
    h.assert_legs_match_position(entry)


async def test_take_profit_partial_fill_shrinks_the_stop_in_place(h):
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    h.venue.fill(h.txid(tp), "0.6", "120")
    await h.settle()
    sl = h.engine.orders[sl.id]
    assert sl.state is State.OPEN and sl.quantity == D("0.4") and h.venue.orders[sl.txid].quantity == D("0.4")
    assert h.legs(entry, OrderRole.STOP_LOSS) == [sl]  # the same order: ids and queue priority kept
    h.assert_legs_match_position(entry)
    amend = next(e for e in h.engine.ledger.order_history(sl.id) if e.name == "AmendRequested")
    assert amend.reason["rule"] == "oco_shrink_amend"
    h.venue.fill(h.txid(tp), "0.4", "120")
    await h.settle()
    assert h.engine.orders[sl.id].state is State.CANCELED and h.position(entry) == 0


async def test_an_amend_the_venue_refuses_is_replaced_by_cancel_and_a_new_leg(h):
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    h.venue.amend_script = [
        AmendResult(PlaceStatus.REJECTED, error="EOrder:Invalid order", error_class=ErrorClass.PERMANENT)
    ]
    h.venue.fill(h.txid(tp), "0.6", "120")
    await h.settle()
    assert h.engine.orders[sl.id].state is State.CANCELED
    [new_sl] = h.legs(entry, OrderRole.STOP_LOSS, live_only=True)
    assert new_sl.quantity == D("0.4") and new_sl.state is State.OPEN
    h.assert_legs_match_position(entry)


async def test_an_amend_whose_reply_is_lost_is_settled_by_reading_the_order(h):
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    real_amend = h.venue.amend

    async def applied_but_reply_lost(**kwargs):
        await real_amend(**kwargs)
        return AmendResult(PlaceStatus.UNKNOWN, error="HTTP 502", error_class=ErrorClass.AMBIGUOUS)

    h.venue.amend = applied_but_reply_lost
    h.venue.fill(h.txid(tp), "0.6", "120")
    await h.settle()
    sl = h.engine.orders[sl.id]
    assert sl.quantity == D("0.4") and sl.amend_pending is None and h.venue.amend_calls[sl.txid] == 1
    assert [e.reason["rule"] for e in h.engine.ledger.order_history(sl.id) if e.name == "Amended"] == ["venue_open"]
    h.assert_legs_match_position(entry)


async def test_a_fill_beyond_the_recorded_quantity_proves_the_amend_in_flight(h):
    """The grown leg fills past its old size before the amend's reply arrives: the fill proves the amend."""
    entry = await h.signal(quantity="1")
    h.venue.fill(h.txid(entry), "0.5", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    h.venue.fill(h.txid(entry), "0.5", "100")
    for report in h.venue.drain():  # the engine hears of the fill and decides the amend; nothing is sent yet
        await h.service.apply(report)
    assert h.engine.orders[sl.id].amend_pending == D("1")
    await h.venue.amend(quantity=D("1"), venue_order_id=sl.txid)  # the venue took it; its reply is still on the way
    h.engine.execution.on_fill_report(h.venue.fill(sl.txid, "0.8", "89"))
    sl = h.engine.orders[sl.id]
    assert sl.quantity == D("1") and sl.filled_quantity == D("0.8") and not sl.conflicts
    assert [e.name for e in h.engine.ledger.order_history(sl.id)][-2:] == ["Amended", "PartiallyFilled"]
    await h.settle()
    h.assert_legs_match_position(entry)


async def test_vanished_stop_is_recreated(h):
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    h.venue.vanish(h.txid(sl))
    await h.settle()
    live = h.legs(entry, OrderRole.STOP_LOSS, live_only=True)
    assert len(live) == 1 and live[0].id != sl.id and live[0].quantity == D("1")
    assert live[0].state is State.OPEN
    h.assert_legs_match_position(entry)


async def test_a_stop_refused_for_funds_is_resized_to_what_the_account_holds_and_rests(hd):
    """Issue 13, scenario 3: a refusal that executed nothing is sent again, corrected; never answered by selling at
    market. The account holds less than the fills say: that shortfall is recorded, so the leg is not grown back."""
    h = hd
    entry = await h.signal()
    h.venue.script = [  # the stop goes first; the account holds 0.9 of the 1 bought (scenario 3)
        PlaceResult(
            PlaceStatus.REJECTED,
            error="EOrder:Insufficient funds",
            error_class=ErrorClass.NOT_EXECUTED,
            correction=Correction.RESIZE,
        )
    ]
    h.venue.balances["XXBT"] = D("0.9")
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    sl = h.engine.orders[sl.id]
    assert sl.state is State.OPEN and sl.quantity == D("0.9") and h.legs(entry, OrderRole.EXIT) == []
    history = [e.name for e in h.engine.ledger.order_history(sl.id)]
    assert history == ["Placed", "Submitted", "NotSent", "Corrected", "Submitted", "Acknowledged"]
    assert h.engine.orders[entry.id].shortfall == D("0.1") and h.position(entry) == D("0.9")
    h.assert_legs_match_position(entry)


async def _filled_with_its_stop_refused_for_good(h):
    """An entry filled whose stop-loss AddOrder the venue refuses for what it is (permission denied: PERMANENT)."""
    entry = await h.signal()
    h.venue.script = [
        PlaceResult(PlaceStatus.REJECTED, error="EGeneral:Permission denied", error_class=ErrorClass.PERMANENT)
    ]
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    return entry


async def test_a_stop_refused_for_what_it_is_is_reported_not_sold_at_market(h):
    entry = await _filled_with_its_stop_refused_for_good(h)
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    assert h.engine.orders[sl.id].state is State.REJECTED and h.legs(entry, OrderRole.EXIT) == []
    reasons = [e.reason["rule"] for e in h.engine.ledger.order_history(entry.id) if e.name == "Deferred"]
    assert "leg_rejected_not_recreated" in reasons


async def test_a_price_tick_costs_no_reaction_while_both_legs_rest(h):
    """Every public trade is a tick: an entry whose stop-loss and take-profit both rest decides nothing on it, so
    the price watcher does not react for it (it stays watched: a leg refused later decides on the price)."""
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    assert len(h.legs(entry, live_only=True)) == 2
    assert h.engine.contingencies.watched_pairs() == {"XXBTZUSD"}
    tick = LastPrice(D("95"), h.clock.now())
    assert h.engine.contingencies.note_price("XXBTZUSD", tick) == []
    assert h.engine.contingencies.last_price("XXBTZUSD") == tick  # recorded all the same
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    h.venue.vanish(h.txid(sl))  # the stop ends without our asking: it is placed again, deciding on the price
    await h.settle()
    [sl2] = h.legs(entry, OrderRole.STOP_LOSS, live_only=True)
    assert sl2.id != sl.id and sl2.order_type.value == "stop-loss"
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    h.venue.fill(h.txid(tp), "1", "120")
    await h.settle()
    assert h.position(entry) == 0 and not h.legs(entry, live_only=True)
    # Flat, though still in the watch list until the next watched_pairs: a stop with no live leg decides nothing.
    assert h.engine.contingencies.note_price("XXBTZUSD", LastPrice(D("80"), h.clock.now())) == []
    assert not h.engine.contingencies._watch["XXBTZUSD"]  # and no longer looked at on every tick


async def test_a_tick_looks_again_at_a_parked_entry_once_a_commit_changes_it(h):
    """While both legs rest, a tick parks the entry: later ticks do not look at it (a tick costs O(entries the
    price decides for), not O(every watched entry)). A commit of the entry or a leg puts it back: a stop that
    vanished and whose re-creation the venue refused decides on the very next tick, before watched_pairs."""
    contingencies = h.engine.contingencies
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    assert contingencies.watched_pairs() == {"XXBTZUSD"}
    assert contingencies.note_price("XXBTZUSD", LastPrice(D("95"), h.clock.now())) == []
    assert not contingencies._watch["XXBTZUSD"] and contingencies._parked == {entry.id: "XXBTZUSD"}
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    h.venue.script = [
        PlaceResult(PlaceStatus.REJECTED, error="EGeneral:Permission denied", error_class=ErrorClass.PERMANENT)
    ]
    h.venue.vanish(h.txid(sl))
    await h.settle()
    assert not h.legs(entry, OrderRole.STOP_LOSS, live_only=True)
    [deciding] = contingencies.note_price("XXBTZUSD", LastPrice(D("95"), h.clock.now()))
    assert deciding.id == entry.id


async def test_a_new_position_is_watched_from_its_bracket_on_not_from_the_next_look(hd):
    """Issue 18 break test: a position's held take-profit was watched only from the next ``watched_pairs`` (up to
    a second later), and a crossing in between was missed (3 of 10 at 0.1 s after the entry's 201). The bracket's
    commit puts the entry in the watch at once."""
    h = hd
    contingencies = h.engine.contingencies
    assert contingencies.watched_pairs() == set()
    entry = await h.signal(order_type="market", limit_price=None, quantity="0.01")
    h.venue.fill(h.txid(entry), "0.01", "100")
    await h.settle()  # the stop rests, the take-profit (120) is held by the ledger; nothing looked at the pairs
    [deciding] = contingencies.note_price("XXBTZUSD", LastPrice(D("121"), h.clock.now()))
    assert deciding.id == entry.id


async def test_a_tick_inside_every_held_trigger_decides_nothing_and_keeps_the_entry_watched(hd):
    """Issue 18 break test: every tick ran the whole protection policy for every position with a held
    take-profit (about 60 us a position a tick). A tick the entry's armed triggers do not reach returns nothing to
    react to; a tick that reaches one still does."""
    h = hd
    contingencies = h.engine.contingencies
    entry = await h.signal(order_type="market", limit_price=None, quantity="0.01")
    h.venue.fill(h.txid(entry), "0.01", "100")
    await h.settle()
    for price in ("101", "102", "99", "119.99"):
        assert contingencies.note_price("XXBTZUSD", LastPrice(D(price), h.clock.now())) == [], price
    assert entry.id in contingencies._watch["XXBTZUSD"]
    [deciding] = contingencies.note_price("XXBTZUSD", LastPrice(D("120"), h.clock.now()))  # the take-profit
    assert deciding.id == entry.id


async def test_the_price_of_a_pair_no_longer_followed_is_forgotten(h):
    """A pair leaves the watched set when its last position is flat: nothing keeps its price current any more, so
    a signal's intake must not check sl/tp against it (it fails open, as for a pair never followed)."""
    contingencies = h.engine.contingencies
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    assert contingencies.watched_pairs() == {"XXBTZUSD"}
    contingencies.note_price("XXBTZUSD", LastPrice(D("130"), h.clock.now()))  # through the take-profit (120)
    await h.settle()
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    h.venue.fill(h.txid(tp), "1", "130")
    await h.settle()
    assert contingencies.last_price("XXBTZUSD") is not None  # until the next look at the watched pairs...
    # ...but a signal's intake settles what was committed first (issue 18 break test: valid signals were refused
    # 422 against the price of the moment the last position closed, for up to a second afterwards)
    assert contingencies.intake_price("XXBTZUSD") is None
    assert contingencies.watched_pairs() == set()
    assert contingencies.last_price("XXBTZUSD") is None


async def test_a_stop_refused_for_what_it_is_exits_at_market_once_a_tick_crosses_its_trigger(h):
    entry = await _filled_with_its_stop_refused_for_good(h)
    assert h.engine.contingencies.watched_pairs() == {"XXBTZUSD"}
    [entry_now] = h.engine.contingencies.note_price("XXBTZUSD", LastPrice(D("95"), h.clock.now()))
    assert entry_now.id == entry.id
    h.venue.prices["XXBTZUSD"] = D("95")  # above the stop (90): nothing to do
    await h.service.poll_prices({"XXBTZUSD"})
    await h.settle()
    assert [o.state for o in h.legs(entry, OrderRole.STOP_LOSS)] == [State.REJECTED]
    h.venue.prices["XXBTZUSD"] = D("89")  # crossed: the position exits at market
    await h.service.poll_prices({"XXBTZUSD"})
    await h.settle()
    _, exit_leg = h.legs(entry, OrderRole.STOP_LOSS)
    assert exit_leg.order_type.value == "market" and exit_leg.quantity == D("1") and exit_leg.state is State.OPEN
    placed = next(e for e in h.engine.ledger.order_history(exit_leg.id) if e.name == "Placed")
    assert placed.reason["rule"] == "stop_trigger_crossed_exit"


async def test_a_stream_status_that_changes_nothing_decides_nothing_again(h, monkeypatch):
    """The stream repeats what the ledger holds (pending_new, new after the acknowledgement, filled after the
    trade): no reaction for it. A REST pass over the same status still reacts, and a change always does."""
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    reacted = []
    react = h.engine.contingencies.react
    monkeypatch.setattr(h.engine.contingencies, "react", lambda order: reacted.append(order.id) or react(order))
    again = replace(h.venue.orders[h.txid(sl)], source="ws")  # the leg open, as the ledger holds it
    await h.service.apply(again)
    assert reacted == []
    await h.service.apply(replace(again, source="reconciliation"))
    assert reacted == [sl.id]
    h.venue.vanish(h.txid(sl))
    await h.settle()
    assert reacted[1] == sl.id and len(h.legs(entry, OrderRole.STOP_LOSS, live_only=True)) == 1


async def test_market_entry_fills_at_once_and_is_bracketed(h):
    entry = await h.signal(order_type="market", limit_price=None)
    h.venue.fill(h.txid(entry), "1", "101")
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.FILLED and entry.average_fill_price == D("101")
    h.assert_legs_match_position(entry)


async def test_venue_rejection_for_minimum_size_is_recorded(h):
    h.venue.script = [PlaceResult(PlaceStatus.REJECTED, error="EOrder:Order minimum not met")]
    entry = await h.signal()
    assert entry.state is State.REJECTED and entry.last_error == "EOrder:Order minimum not met"
    assert h.legs(entry) == []


async def test_halt_refuses_entries_withdraws_pending_and_keeps_managing_exits(h):
    entry = await h.signal(signal_id="a")
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    h.engine.control.submit_signal(
        {
            "signal_id": "b",
            "pair": "XBT/USD",
            "side": "buy",
            "order_type": "limit",
            "quantity": "1",
            "limit_price": "100",
        }
    )  # recorded, not yet sent
    h.engine.control.set_mode(TradingMode.HALTED, by="ops:alice", why="exchange incident", cancel_entries=True)
    with pytest.raises(TradingHalted, match=r"halted.*ops:alice.*exchange incident"):
        h.engine.control.submit_signal(
            {"signal_id": "c", "pair": "XBT/USD", "side": "buy", "order_type": "market", "quantity": "1"}
        )
    assert (
        h.engine.control.submit_signal(
            {
                "signal_id": "b",
                "pair": "XBT/USD",
                "side": "buy",
                "order_type": "limit",
                "quantity": "1",
                "limit_price": "100",
            }
        ).created
        is False
    )  # a repeat is answered
    await h.settle()
    b = h.engine.ledger.order_for_signal("b")
    assert b.state is State.CANCELED and h.venue.add_order_calls[b.cl_ord_id] == 0
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    h.venue.fill(h.txid(sl), "1", "90")  # exits keep working while halted
    await h.settle()
    assert h.position(entry) == 0
    h.assert_legs_match_position(entry)


async def test_unknown_outcome_resolved_by_cl_ord_id_without_resending(h):
    h.venue.script = ["ack_but_unknown"]
    entry = await h.signal()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.OPEN and entry.txid  # found among open orders by cl_ord_id
    assert h.venue.add_order_calls[entry.cl_ord_id] == 1
    assert names(h, entry)[:4] == ["Placed", "Submitted", "SubmissionOutcomeUnknown", "Acknowledged"]


async def test_unknown_outcome_not_found_becomes_rejected_only_after_deadline(h):
    h.venue.script = [PlaceResult(PlaceStatus.UNKNOWN, error="timeout")]
    entry = await h.signal()
    assert h.engine.orders[entry.id].state is State.OUTCOME_UNKNOWN
    h.clock.advance(30)  # deadline reached, grace not yet over
    await h.settle()
    assert h.engine.orders[entry.id].state is State.OUTCOME_UNKNOWN
    h.clock.advance(5)
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.REJECTED and h.venue.add_order_calls[entry.cl_ord_id] == 1
    assert h.engine.ledger.order_history(entry.id)[-1].reason["rule"] == "unknown_resolved_not_placed"


async def test_not_sent_order_is_sent_later(h):
    h.venue.script = [PlaceResult(PlaceStatus.NOT_SENT, error="circuit open")]
    entry = await h.signal()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.OPEN  # sent on the next pass
    assert names(h, entry)[:4] == ["Placed", "Submitted", "NotSent", "Submitted"]


async def test_restart_rebuilds_state_and_timers_from_the_log(h, ledger, clock):
    entry = await h.signal(timeout_s=60)
    clock.advance(61)
    fresh = Harness(ledger, clock)  # a new process: nothing in memory
    assert fresh.engine.load() == 1
    fresh.venue = h.venue
    fresh.service.exchange = h.venue
    await fresh.settle()
    assert fresh.engine.orders[entry.id].state is State.CANCELED


async def test_duplicate_and_late_observations(h):
    entry = await h.signal()
    trade = h.venue.fill(h.txid(entry), "0.5", "100")
    await h.settle()
    from dataclasses import replace

    dup = replace(trade, source="rest")
    version = h.engine.orders[entry.id].version
    h.engine.execution.on_fill_report(dup)
    assert h.engine.orders[entry.id].version == version  # nothing written
    h.clock.advance(300)
    await h.settle()  # timed out and canceled
    late = replace(trade, trade_id="TLATE-RACED-CANCEL", last_qty=D("0.2"), source="ws")
    h.engine.execution.on_fill_report(late)
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.CANCELED and entry.filled_quantity == D("0.7")
    h.assert_legs_match_position(entry)


async def test_reports_published_for_every_state_change(h):
    entry = await h.signal()
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    mine = [r for r in h.reports if r.order_id == entry.id]
    assert [r.event for r in mine] == ["Placed", "Submitted", "Acknowledged", "Filled"]
    last = mine[-1]
    assert (last.order_status, last.quantity_filled, last.average_fill_price, last.side) == (
        "FILLED",
        D("1"),
        D("100"),
        "BUY",
    )
    assert len({r.event_id for r in h.reports}) == len(h.reports)


async def test_both_legs_filled_race_is_recorded_as_an_overexit_and_nothing_rests(h):
    """The sibling filled before its OCO cancel landed (the stream was late): more was sold than held. Nothing is
    left resting and an operator is told."""
    entry = await h.signal(quantity="1")
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    h.venue.fill(h.txid(tp), "1", "120")
    h.venue.fill(h.txid(sl), "1", "89")  # both before the engine hears of either
    await h.settle()
    assert h.position(entry) == D("-1") and not h.legs(entry, live_only=True)
    rules = [e.reason["rule"] for e in h.engine.ledger.order_history(entry.id) if e.name == "Deferred"]
    assert rules.count("position_overexited") == 1


async def test_default_the_take_profit_is_held_by_the_ledger_and_sent_when_the_price_crosses_it(hd):
    """Issue 13, scenario 4: Kraken holds the base for an untriggered stop, so a resting take-profit beside it is
    refused for funds. The stop rests; the take-profit is a trigger on the public price that the ledger holds."""
    h = hd
    entry = await h.signal(order_type="market", limit_price=None, quantity="0.01")
    h.venue.fill(h.txid(entry), "0.01", "100")
    await h.settle()
    [sl] = h.legs(entry)
    assert sl.role is OrderRole.STOP_LOSS and sl.state is State.OPEN
    assert h.engine.contingencies.watched_pairs() == {"XXBTZUSD"}
    h.assert_legs_match_position(entry)
    h.venue.prices["XXBTZUSD"] = D("119")
    await h.service.poll_prices({"XXBTZUSD"})
    await h.settle()
    assert h.engine.orders[sl.id].state is State.OPEN  # not yet
    h.venue.prices["XXBTZUSD"] = D("120.5")
    await h.service.poll_prices({"XXBTZUSD"})
    await h.settle()
    assert h.engine.orders[sl.id].state is State.CANCELED
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    assert tp.order_type.value == "market" and tp.quantity == D("0.01")
    h.venue.fill(h.txid(tp), "0.01", "120.4")
    await h.settle()
    assert h.position(entry) == 0 and not h.legs(entry, live_only=True)
    triggered = next(e for e in h.engine.ledger.order_history(entry.id) if e.name == "EmulatedLegTriggered")
    assert triggered.data["price"] == D("120.5")


async def test_a_stale_price_triggers_nothing(hd):
    h = hd
    entry = await h.signal(order_type="market", limit_price=None, quantity="0.01")
    h.venue.prices["XXBTZUSD"] = D("125")
    await h.service.poll_prices({"XXBTZUSD"})  # seen before the position exists: nothing watched decides on it
    h.clock.advance(16)  # older than price_max_age_s (15 s) when the fill comes
    h.venue.fill(h.txid(entry), "0.01", "100")
    await h.settle()
    assert h.engine.contingencies.prices["XXBTZUSD"].price == D("125")  # known, but too old to decide on
    assert [o.role for o in h.legs(entry, live_only=True)] == [OrderRole.STOP_LOSS]


async def test_legs_are_sized_to_what_the_account_holds_after_a_fee_charged_in_the_base(h):
    """Issue 13, scenario 2: a 0.01 buy whose fee of 0.000026 is charged in BTC holds 0.009974; legs of 0.01 would
    be refused for funds. They protect what is held, and pay their own fees in the quote (oflags=fciq)."""
    entry = await h.signal(order_type="market", limit_price=None, quantity="0.01", sl_price="90", tp_price="120")
    h.venue.fill(h.txid(entry), "0.01", "100", fee="0.000026", fee_asset="XXBT")
    await h.settle()
    legs = h.legs(entry, live_only=True)
    assert sorted(o.role.value for o in legs) == ["stop_loss", "take_profit"]
    assert all(o.quantity == D("0.009974") for o in legs)
    assert all(h.venue.requests[o.txid].fee_in_quote for o in legs)
    assert h.position(entry) == D("0.009974")
    h.assert_legs_match_position(entry)


async def test_a_base_fee_learned_over_rest_is_charged_in_the_base(h):
    """Found by the outage soak (base_fees): a fill the stream missed is read from TradesHistory, which names no fee
    asset (the quote is assumed); the order's info does (``oflags=fcib``). Recorded as quote, the fee was counted as
    held base: the position and the legs were 0.000026 too large and the ledger's balances off the venue's."""
    entry = await h.signal(order_type="market", limit_price=None, quantity="0.01", sl_price="90", tp_price="120")
    txid = h.txid(entry)
    h.venue.fill(txid, "0.01", "100", fee="0.000026", fee_asset="ZUSD")  # what REST's trade says
    h.venue.orders[txid] = replace(h.venue.orders[txid], commission_asset="XXBT")  # what the order's oflags say
    h.venue.drain()  # the stream missed it (an outage, a restart)
    await h.service.poll_once()
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert [f.fee_asset for f in entry.fills.values()] == ["XXBT"]
    assert h.position(entry) == D("0.009974")
    assert all(o.quantity == D("0.009974") for o in h.legs(entry, live_only=True))
    h.assert_legs_match_position(entry)


async def test_an_amend_decided_by_an_amends_answer_is_sent_at_once(h):
    """Found by the outage soak: the entry filled more while a leg's amend was in flight, so the amend's answer
    decided the next one; that one was taken for the same amend not carried out and waited out the backoff (up to
    ``retry_max_s``, past the soak's stop): the leg stayed short of the position."""
    h.service.config = replace(h.service.config, retry_min_s=5.0)
    entry = await h.signal(quantity="1")
    h.venue.fill(h.txid(entry), "0.5", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    h.venue.fill(h.txid(entry), "0.3", "100")
    for report in h.venue.drain():
        await h.service.apply(report)
    assert h.engine.orders[sl.id].amend_pending == D("0.8")
    amend, filled = h.venue.amend, []

    async def entry_fills_meanwhile(**kwargs):
        if not filled:
            filled.append(h.venue.fill(h.txid(entry), "0.2", "100"))
            h.venue.drain()
            h.engine.execution.on_fill_report(filled[0])
        return await amend(**kwargs)

    h.venue.amend = entry_fills_meanwhile
    await h.service.send_pending()
    await h.service.wait_for_calls()
    h.venue.amend = amend
    assert h.engine.orders[sl.id].quantity == D("0.8") and h.engine.orders[sl.id].amend_pending == D("1")
    await h.service.send_pending()  # no time passes: nothing failed, nothing to back off from
    await h.service.wait_for_calls()
    assert h.engine.orders[sl.id].quantity == D("1") and h.engine.orders[sl.id].amend_pending is None
    h.assert_legs_match_position(entry)


async def test_timeouts_due_in_one_tick_are_recorded_in_one_commit_and_only_due_orders_are_asked(h):
    """The timer asks the orders whose deadline passed (the index keeps them by deadline) and records the decisions
    of one tick in one transaction, not one commit per order."""
    first = await h.signal(signal_id="t1", timeout_s=60)
    second = await h.signal(signal_id="t2", timeout_s=60)
    later = await h.signal(signal_id="t3", timeout_s=600)
    h.clock.advance(59)
    assert h.engine.orders.due(h.clock.now()) == []
    h.clock.advance(1)
    assert [o.id for o in h.engine.orders.due(h.clock.now())] == [first.id, second.id]
    commits = h.engine.uow.commits
    h.engine.tick()
    assert h.engine.uow.commits == commits + 1
    assert {h.engine.orders[o.id].state for o in (first, second)} == {State.CANCEL_PENDING}
    assert h.engine.orders[later.id].state is State.OPEN
    assert h.engine.orders.due(h.clock.now()) == []  # canceling: no longer a timeout to decide
    await h.settle()
    h.clock.advance(540)
    assert [o.id for o in h.engine.orders.due(h.clock.now())] == [later.id]


async def test_a_tick_with_nothing_due_commits_nothing(h):
    await h.signal(signal_id="quiet", timeout_s=60)
    commits = h.engine.uow.commits
    h.engine.tick()
    assert h.engine.uow.commits == commits
    assert h.engine.contingencies.needing_attention() == []  # a resting entry without fills needs no decision


async def test_deadlines_are_rebuilt_from_the_log_at_load(h):
    entry = await h.signal(signal_id="reload", timeout_s=60)
    h.engine.load()
    h.clock.advance(60)
    assert [o.id for o in h.engine.orders.due(h.clock.now())] == [entry.id]
    await h.settle()
    assert h.engine.orders[entry.id].state is State.CANCELED


async def test_the_timers_pass_reacts_only_to_entries_changed_since_or_still_deciding(hd):
    """Issue 18 break test: with held take-profits every position is flagged, and every second's pass ran the
    whole policy for each (206-232 ms at 10,000). Now the first pass looks at every flagged entry, the next ones
    only at what a commit changed since or what the last pass decided something for."""
    h = hd
    entry = await h.signal(order_type="market", limit_price=None, quantity="0.01")
    h.venue.fill(h.txid(entry), "0.01", "100")
    await h.settle()
    contingencies, reacted = h.engine.contingencies, []
    react = contingencies.react
    contingencies.react = lambda order: reacted.append(order.id) or react(order)
    contingencies.look_at_everything()
    h.engine.tick()
    assert reacted == [entry.id]  # the full pass
    reacted.clear()
    for _ in range(3):
        h.engine.tick()
    assert reacted == []  # nothing changed: nothing to decide, nothing looked at
    [stop] = h.legs(entry, OrderRole.STOP_LOSS)
    h.venue.vanish(h.txid(stop))  # the stop ends without our asking: the reaction re-creates it...
    for report in h.venue.drain():
        await h.service.apply(report)
    reacted.clear()
    h.engine.tick()  # ...and the next pass looks at the entry the commit changed
    assert reacted == [entry.id]
