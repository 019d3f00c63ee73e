"""A whole session against the simulator (place, ambiguous place, cancel, queries, dead man's switch, failures that
raise, the WS stream through a fill and a disconnect, the trading service's REST reconciliation) with every logger at
DEBUG: neither the API secret nor any API-Sign value the client computed appears in a log line, an exception text, a
result or a repr. Nor does a WS token (orders go over the executions socket with it)."""

import logging

import pytest

from execledger.application.ports import PlaceStatus, StreamState, VenueOrderStatus
from execledger.infrastructure.kraken import rest as rest_module
from execledger.infrastructure.kraken.auth import decode_secret
from execledger.infrastructure.kraken.errors import BreakerOpen, KrakenCallFailed
from execledger.infrastructure.simulator import FaultKind

from .conftest import BREAKER_THRESHOLD, PAIR, Collector, until


@pytest.fixture
def signatures(monkeypatch):
    """Every API-Sign header value the client computes."""
    made: list[str] = []

    class Recording(rest_module.Signer):
        def sign(self, *args):
            made.append(super().sign(*args))
            return made[-1]

    monkeypatch.setattr(rest_module, "Signer", Recording)
    return made


async def full_session(venue, trading) -> list[object]:
    """Drive every adapter call against the simulator; returns what it produced (results, errors, objects)."""
    exchange, sim = venue.exchange, venue.sim
    produced: list[object] = [exchange, exchange.rest, exchange.rest.credentials, exchange.rest.nonce]
    seen = Collector(exchange.executions())
    await until(lambda: seen.events(StreamState.CONNECTED))
    produced.append(venue.streams[0])

    request = venue.limit_buy()
    placed = await exchange.place(request)
    filled = await exchange.place(venue.limit_buy(price="61000"))
    assert [r.method for r in sim.requests("add_order")] == ["add_order", "add_order"]  # over the socket
    exchange.ws_ack_timeout_s = 0.1  # the simulator answers after 0.3 s of real time: unknown, over WS
    sim.inject_fault("add_order", FaultKind.DELAY_REPLY, seconds=0.3)
    ws_ambiguous = await exchange.place(venue.limit_buy(price="59500"))
    assert ws_ambiguous.status is PlaceStatus.UNKNOWN
    produced.append(ws_ambiguous)
    exchange.order_entry = "rest"  # from here on REST: its ambiguous AddOrder and its 502 cancel
    sim.inject_fault("AddOrder", FaultKind.HTTP_502_AFTER_EXECUTE)
    ambiguous_request = venue.limit_buy(price="59000")
    ambiguous = await exchange.place(ambiguous_request)
    assert ambiguous.status is PlaceStatus.UNKNOWN
    produced += [placed, filled, ambiguous, await exchange.find_by_client_order_id(ambiguous_request.client_order_id)]
    sim.set_mark_price(PAIR, "60500")  # fills the 61000 buy
    await until(lambda: seen.statuses(filled.venue_order_id, VenueOrderStatus.FILLED))
    assert await sim.ws_disconnect() == 1
    await until(lambda: venue.streams[0].connects == 2 and len(seen.events(StreamState.CONNECTED)) == 2)
    reconciled = await trading.service.reconcile()  # the service's REST polling: it logs orders foreign to it
    assert placed.venue_order_id in {o.venue_order_id for o in reconciled.foreign}
    produced.append(reconciled)

    sim.inject_fault("CancelOrder", FaultKind.HTTP_502_AFTER_EXECUTE)
    produced += [
        await exchange.cancel(venue_order_id=placed.venue_order_id),
        await exchange.query_orders([placed.venue_order_id, filled.venue_order_id]),
        await exchange.find_by_client_order_id(request.client_order_id),
        await exchange.open_orders(),
        await exchange.fills_since(None),
        await exchange.cancel_all_after(60),
        await exchange.cancel_all(),
        await exchange.cancel_all_after(0),
        await exchange.asset_pairs(),
    ]
    for failing in (lambda: exchange.rest.private("NoSuchMethod"), lambda: exchange.query_orders(["bad txid"])):
        try:
            await failing()
        except KrakenCallFailed as exc:
            produced.append(exc)
    sim.inject_fault("OpenOrders", FaultKind.HTTP_502_BEFORE_EXECUTE, count=BREAKER_THRESHOLD)
    with pytest.raises(BreakerOpen) as opened:
        await exchange.open_orders()
    produced += [opened.value, exchange.entry_block(), await exchange.place(venue.limit_buy())]
    await seen.close()
    return produced + seen.seen


async def test_no_secret_or_signature_in_logs_exceptions_results_or_reprs(venue, trading, caplog, signatures):
    caplog.set_level(logging.DEBUG)
    produced = await full_session(venue, trading)

    secret_bytes = decode_secret(venue.sim.secret)
    tokens = list(venue.sim.ws_tokens)
    assert tokens  # the WS trading requests carried one
    needles = {venue.sim.secret, secret_bytes.hex(), str(secret_bytes), *signatures, *tokens}
    texts = [caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
    for thing in produced:
        texts += [repr(thing), str(thing)]
        if isinstance(thing, BaseException):
            texts += [repr(a) for a in thing.args]
            texts += [repr(thing.__cause__), repr(thing.__context__)]
    haystack = "\n".join(texts)

    assert len(signatures) > 15  # the session really signed its calls (and the check below is not vacuous)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert "Kraken OpenOrders answered" in caplog.text  # the DEBUG lines of the REST client were captured
    leaked = [needle for needle in needles if needle in haystack]
    assert leaked == []
