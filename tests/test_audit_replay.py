"""Audit timelines, state at a past moment, and replay that catches a changed policy."""

from dataclasses import replace as dc_replace
from decimal import Decimal as D

import execledger.application.replay as replay_module
from execledger.application.audit import orders_at, signal_timeline
from execledger.application.policies import PlaceBracket, PolicyConfig
from execledger.application.replay import PolicyReplay
from execledger.domain.order import State
from execledger.domain.values import OrderRole
from tests.harness import Harness


async def bracketed_story(ledger, clock):
    """A limit entry fills 0.6 (the stop rests, the take-profit is held by the ledger), then 0.2 more (the stop
    grows by an amend), times out, and the price reaches the take-profit (the stop is canceled, the position sold
    at market)."""
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="story", timeout_s=60)
    h.venue.fill(h.txid(entry), "0.6", "100")
    await h.settle()
    h.venue.fill(h.txid(entry), "0.2", "100")
    await h.settle()
    clock.advance(61)  # the rest of the entry times out
    await h.settle()
    h.venue.prices["XXBTZUSD"] = D("121")
    await h.service.poll_prices({"XXBTZUSD"})
    await h.settle()
    [tp] = h.legs(entry, OrderRole.TAKE_PROFIT)
    h.venue.fill(h.txid(tp), "0.8", "120.9")
    await h.settle()
    assert h.position(entry) == 0
    return h, entry


async def test_audit_timeline_tells_the_whole_bracketed_story(ledger, clock):
    h, entry = await bracketed_story(ledger, clock)
    for ident in ("story", str(entry.id), str(h.legs(entry)[0].id)):  # signal id, entry id, or any leg id
        found, orders, timeline = signal_timeline(ledger, ident)
        assert found.id == entry.id
    assert {o.role for o in orders} == {OrderRole.ENTRY, OrderRole.STOP_LOSS, OrderRole.TAKE_PROFIT}
    rules = [e.entry.reason["rule"] for e in timeline if e.entry.reason]
    for rule in (
        "approved_signal",
        "bracket_placed",
        "leg_emulated",
        "bracket_grow",
        "bracket_grow_amend",
        "timeout_cancel",
        "emulated_trigger_crossed",
        "oco_cancel_sibling",
        "emulated_trigger_exit",
    ):
        assert rule in rules
    stamps = [e.entry.timestamp for e in timeline]
    assert stamps == sorted(stamps)


async def test_state_at_shows_orders_as_they_were(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="then")
    middle = ledger.order_history(entry.id)[-1].timestamp
    clock.advance(1)  # events carry the ledger's clock: the fill comes a second later
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    past = {o.id: o for o in orders_at(ledger, middle)}
    assert past[entry.id].state is State.OPEN and past[entry.id].filled_quantity == 0
    assert len(past) == 1  # the legs did not exist yet
    now = {o.id: o for o in orders_at(ledger, ledger.order_history(entry.id)[-1].timestamp)}
    assert now[entry.id].state is State.FILLED


async def test_replay_reproduces_every_recorded_decision(ledger, clock, pairs):
    await bracketed_story(ledger, clock)
    result = PolicyReplay(ledger.app, pairs, PolicyConfig()).run()
    assert result.ok, result.differences
    # BracketPlaced, BracketResized, the stop's AmendRequested, TimedOut, EmulatedLegTriggered, the stop's cancel,
    # the take-profit's market exit (BracketLegAdded)
    assert result.decisions_checked == 7 and result.events == ledger.app.recorder.max_notification_id()


async def test_replay_detects_a_changed_timeout_config(ledger, clock, pairs):
    h = Harness(ledger, clock)
    entry = await h.signal(signal_id="t")
    clock.advance(300)
    await h.settle()
    assert PolicyReplay(ledger.app, pairs, PolicyConfig(default_timeout_s=300)).run().ok
    result = PolicyReplay(ledger.app, pairs, PolicyConfig(default_timeout_s=600)).run()
    [diff] = result.differences
    assert diff.event == "TimedOut" and diff.order_id == entry.id and diff.replayed == "nothing"


async def test_replay_detects_a_changed_bracket_policy(ledger, clock, pairs, monkeypatch):
    await bracketed_story(ledger, clock)

    def half_brackets(*args):  # a deliberately changed policy: protect only half
        return [dc_replace(a, quantity=a.quantity / 2) if isinstance(a, PlaceBracket) else a for a in original(*args)]

    original = replay_module.protection_policy
    monkeypatch.setattr(replay_module, "protection_policy", half_brackets)
    result = PolicyReplay(ledger.app, pairs, PolicyConfig()).run()
    assert [d.event for d in result.differences] == ["BracketPlaced"]
    assert "0.6" in result.differences[0].recorded and "0.3" in result.differences[0].replayed
    assert D("0.6") == D(result.differences[0].recorded.split()[1])
