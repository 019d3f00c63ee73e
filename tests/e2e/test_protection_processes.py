"""Issue 13, scenarios 7 and 8: what a process's death and its machine's clock do to protection. The service runs
as a real process (``execledger run``) against a simulator process; the simulator's own clock fires Kraken's
dead-man's switch (``POST /_sim/time``), so nothing waits the 60 s a real account would. Both stores.
"""

from __future__ import annotations

from decimal import Decimal as D

from tests.faults.harness import wait_until
from tests.processes import Deployment

SIGNAL = {
    "pair": "XBT/USD",
    "side": "buy",
    "order_type": "market",
    "quantity": "0.01",
    "sl_price": "65000",
    "tp_price": "69000",
}


async def book(d: Deployment) -> list[dict]:
    """The simulator's open orders on XBT/USD."""
    async with d.http.get(f"{d.sim_url}/_sim/orders") as r:
        return (await r.json()).get("XXBTZUSD", {}).get("open", [])


async def deadman_calls(d: Deployment) -> list[str]:
    """The ``timeout`` of every CancelAllOrdersAfter the venue received, in order."""
    async with d.http.get(f"{d.sim_url}/_sim/requests", params={"method": "CancelAllOrdersAfter"}) as r:
        return [str(c["params"].get("timeout")) for c in await r.json() if c["status"] == 200]


async def test_a_killed_service_leaves_its_legs_resting_after_the_dead_mans_timeout(tmp_path, settings):
    """Scenario 7: the service is SIGKILLed while a bracket rests. Kraken's dead-man's switch cancels every order
    of the account when it fires, so the service must not leave it armed while a protective leg rests, even when
    the venue is slow to take the disarm (held 3 s here): a minute later (the simulator's clock), both legs still
    rest, with no service running."""
    async with Deployment(tmp_path, settings) as d:
        service, api = await d.service("svc", EXECLEDGER_RESTING_LEG="both")

        async def armed():
            return (await deadman_calls(d))[:1] == ["60"]

        await wait_until(armed, timeout=15, what="the switch armed while nothing needs protecting", process=service)
        async with d.http.post(
            f"{d.sim_url}/_sim/faults", json={"path": "CancelAllOrdersAfter", "kind": "hold_request", "seconds": 3}
        ) as r:
            assert r.status == 200
        status, body = await d.post(f"{api}/v1/signals", {"signal_id": "dm", **SIGNAL})
        assert status == 201, body

        async def legs_resting():
            legs = [o for o in await book(d) if o["side"] == "sell"]
            return legs if sorted(o["ordertype"] for o in legs) == ["stop-loss", "take-profit"] else None

        legs = await wait_until(legs_resting, timeout=30, what="both legs resting", process=service)
        service.kill()  # SIGKILL, the moment both legs rest
        assert await service.reap() is not None
        async with d.http.post(f"{d.sim_url}/_sim/time", json={"seconds": 120}) as r:
            assert r.status == 200  # the dead-man's timeout (60 s) passes on the venue
        after = [o for o in await book(d) if o["side"] == "sell"]
        assert sorted(o["txid"] for o in after) == sorted(o["txid"] for o in legs)
        assert all(D(o["volume"]) == D("0.01") and D(o["vol_exec"]) == 0 for o in after)
        history = {o["txid"]: o for o in await d.venue_orders()}
        assert not [o for o in history.values() if o["reason"] and "dead man" in str(o["reason"]).lower()]
