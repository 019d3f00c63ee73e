"""An AddOrder refused for its nonce (EAPI:Invalid nonce: checked before the engine sees the request, so certainly
not executed; REFERENCE.md [S-NW]) goes out again at once with a fresh nonce, the first time: calls signed in nonce
order travel on separate connections and one can overtake another on the way, so a stop-loss must not wait a
backoff for it. A second refusal in a row waits like any other refusal (another signer on the key may be ahead)."""

from __future__ import annotations

from execledger.application.ports import Correction, ErrorClass, PlaceResult, PlaceStatus
from execledger.application.service import ServiceConfig, TradingService
from execledger.domain.order import State
from execledger.infrastructure.kraken.errors import rule_for
from tests.harness import Harness, limit_buy

NONCE = PlaceResult(
    PlaceStatus.REJECTED,
    error="EAPI:Invalid nonce",
    error_class=ErrorClass.NOT_EXECUTED,
    correction=Correction.FRESH_NONCE,
)


def entry(h: Harness):
    return h.engine.control.submit_signal(limit_buy("n1")).order


def test_the_error_table_asks_for_a_fresh_nonce():
    rule = rule_for("EAPI:Invalid nonce")
    assert (rule.write, rule.correction) == (ErrorClass.NOT_EXECUTED, Correction.FRESH_NONCE)


async def test_an_overtaken_addorder_goes_out_again_at_once_then_backs_off(ledger, clock):
    h = Harness(ledger, clock)
    h.service = TradingService(h.engine, h.venue, ServiceConfig(deadman_enabled=False, retry_min_s=30.0))
    order = entry(h)
    h.venue.script = [NONCE, NONCE]
    await h.service.send_pending()
    assert h.engine.orders[order.id].state is State.PENDING_SUBMIT and h.service.next_retry_in() == 0.0
    history = h.engine.ledger.order_history(order.id)
    assert history[-1].data["reason"]["text"].endswith("at once with a fresh nonce")
    await h.service.send_pending()  # the fresh nonce is refused too: now it waits the backoff
    assert h.venue.add_order_calls[order.cl_ord_id] == 2 and h.service.next_retry_in() > 20
    await h.service.send_pending()
    assert h.venue.add_order_calls[order.cl_ord_id] == 2  # not due yet
