"""A HALT confirmed while an AddOrder opens a new connection (TCP and TLS handshakes take milliseconds, after the
call's turn on the wire came and ``still_wanted`` said yes) must stop it: the adapter asks ``still_wanted`` again
as the body is handed to the transport, with no await in between. Before, the question was asked only when the
turn came, and an entry that needed a new connection could reach the venue just after the halt's receipt (seen
once in ``tests/faults`` bursts)."""

from execledger.application.ports import ErrorClass, PlaceStatus
from execledger.infrastructure.kraken.breaker import BreakerState


async def test_a_halt_confirmed_while_the_addorder_connects_stops_it_before_any_byte_leaves(venue):
    asked: list[bool] = []  # was a connection to the venue already open when asked?

    def halted_once_connecting() -> str | None:
        session = venue.exchange.rest._session
        connected = session is not None and bool(session.connector._conns or session.connector._acquired)
        asked.append(connected)
        return None if not connected else "trading is halted (ops: incident)"

    request = venue.limit_buy()
    result = await venue.exchange.place(request, still_wanted=halted_once_connecting)

    assert asked == [False, True], asked  # yes at its turn, before the connection; no once connected
    assert result.status is PlaceStatus.NOT_SENT and "halted" in (result.error or ""), result
    assert result.error_class is ErrorClass.RETRYABLE
    assert venue.add_orders(request.client_order_id) == []  # the simulator never saw it
    assert venue.breaker.state is BreakerState.CLOSED and venue.breaker.consecutive_failures == 0  # not an outage
    # The signing turn was passed on: the next AddOrder goes, and only it reached the venue.
    again = await venue.exchange.place(venue.limit_buy(), still_wanted=lambda: None)
    assert again.status is PlaceStatus.ACKNOWLEDGED, again
    assert len(venue.sim.requests("AddOrder")) == 1
