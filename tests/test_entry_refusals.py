"""An entry the venue refused for what it asks is not sent again while nothing changed: the break test saw one sent
again with backoff until its maximum age (60 s). Funds and the open-order limit are definite for an entry in the
error table (``tests/kraken/test_errors.py``, ``tests/integration/test_send_again.py``); a precision refusal is
corrected by the venue's current rules, and an entry those rules round the same is withdrawn with the reason. A
protective leg refused the same way is sent again: it protects a position."""

from __future__ import annotations

from execledger.application.ports import Correction, ErrorClass, PlaceResult, PlaceStatus
from execledger.domain.order import State
from execledger.domain.values import OrderRole
from tests.harness import Harness, limit_buy

PRECISION = "EOrder:Invalid price:XXBTZUSD price can only be specified up to 1 decimals."


def refused_for_precision() -> PlaceResult:
    return PlaceResult(
        PlaceStatus.REJECTED, error=PRECISION, error_class=ErrorClass.NOT_EXECUTED, correction=Correction.REROUND
    )


async def test_an_entry_the_current_rules_round_the_same_is_withdrawn_not_sent_again(ledger, clock):
    h = Harness(ledger, clock)
    entry = h.engine.control.submit_signal(limit_buy("precise")).order
    h.venue.script = [refused_for_precision(), refused_for_precision()]
    await h.settle()
    entry = h.engine.orders[entry.id]
    assert entry.state is State.CANCELED and h.venue.add_order_calls[entry.cl_ord_id] == 1
    history = h.engine.ledger.order_history(entry.id)
    assert [e.name for e in history] == ["Placed", "Submitted", "NotSent", "Canceled"]
    why = history[-1].reason
    assert why["rule"] == "unsendable_after_correction" and PRECISION in why["text"]


async def test_a_leg_refused_for_precision_is_sent_again_all_the_same(ledger, clock):
    h = Harness(ledger, clock)
    entry = await h.signal()
    h.venue.script = [refused_for_precision()]  # the stop-loss goes first
    h.venue.fill(h.txid(entry), "1", "100")
    await h.settle()
    [stop] = h.legs(entry, OrderRole.STOP_LOSS)
    assert stop.state is State.OPEN and h.venue.add_order_calls[stop.cl_ord_id] == 2
    h.assert_legs_match_position(entry)
