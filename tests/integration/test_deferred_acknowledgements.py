"""The running service commits deferred acknowledgements by itself: ``ack_flush_s`` after they arrived when nothing
else was committed, and at stop (tests/test_deferred_acknowledgements.py has the rules)."""

from __future__ import annotations

import pytest

from execledger.domain.order import State

from .conftest import until


async def test_an_acknowledgement_reaches_the_store_on_its_own_while_running(trading):
    await trading.start()
    order_id = trading.buy()
    trading.service.wake()
    await until(lambda: "Acknowledged" in trading.history(order_id))
    assert trading.order(order_id).state is State.OPEN and not trading.engine.uow.has_deferred
    await trading.stop()


@pytest.mark.parametrize("service_options", [{"ack_flush_s": 3600.0}])
async def test_an_acknowledgement_deferred_at_stop_is_committed_by_the_stop(trading):
    await trading.start()
    order_id = trading.buy()
    trading.service.wake()
    await until(lambda: trading.order(order_id).state is State.OPEN)
    assert trading.history(order_id)[-1] == "Submitted" and trading.engine.uow.has_deferred
    await trading.stop()
    assert trading.history(order_id)[-1] == "Acknowledged" and not trading.engine.uow.has_deferred
