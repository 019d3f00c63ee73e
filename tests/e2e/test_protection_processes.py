"""Issue 13, scenarios 7 and 8: what a process's death and its machine's clock do to protection. The service runs
as a real process (``execledger run``) against a simulator process; the simulator's own clock fires Kraken's
dead-man's switch (``POST /_sim/time``), so nothing waits the 60 s a real account would. Both stores.
"""

from __future__ import annotations

import os
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.faults.harness import wait_until
from tests.faults.protection import libfaketime
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


LIBFAKETIME = libfaketime()  # the library the ``libfaketime`` dev dependency ships (the fault suite steps with it too)


class WallClock:
    """The service process's wall clock, stepped through libfaketime (the ``libfaketime`` wheel): ``time.time`` and
    ``datetime.now`` move, the monotonic clock does not, as when NTP or an operator steps a machine's clock. The
    simulator (the venue) is not affected."""

    def __init__(self, tmp_path: Path):
        if LIBFAKETIME is None:
            if os.environ.get("CI"):
                pytest.fail("libfaketime is missing: pip install -e '.[dev]' installs it")
            pytest.skip("libfaketime is not installed (a dev dependency: pip install -e '.[dev]')")
        self.file = tmp_path / "wall-offset"
        self.step("+0")

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_CACHE_DURATION": "1",  # a step is seen within a second
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def step(self, offset: str) -> None:
        """Set the wall clock's offset from the real time (``+120``, ``+3600``, ``-3600``: seconds)."""
        self.file.write_text(offset + "\n")


async def history(d: Deployment, api: str, signal_id: str) -> list[str]:
    body = await d.get(f"{api}/v1/orders/{signal_id}")
    return [h["event"] for h in body["history"]] if body else []


async def lookups(d: Deployment, cl_ord_id: str) -> int:
    """How often the service has looked for an order by its cl_ord_id (an unknown outcome, once a tick)."""
    async with d.http.get(f"{d.sim_url}/_sim/requests", params={"cl_ord_id": cl_ord_id}) as r:
        return sum(1 for c in await r.json() if c["method"] == "OpenOrders")


async def test_a_wall_clock_step_neither_rejects_a_late_booked_entry_nor_times_out_a_young_one(tmp_path, settings):
    """Scenario 8: an AddOrder is answered 502 and the venue books it later (the trader saw 12 s; 20 s here leaves
    room for two steps), while the machine's wall clock steps +120 s: the outcome stays unknown (its deadline is
    measured on the monotonic clock), the late booking and its fill (over the WS stream) are recorded and
    protected, and the service keeps running. A +1 h step does not time out an entry that has rested for seconds.
    """
    wall = WallClock(tmp_path)
    async with Deployment(tmp_path, settings) as d:
        # Route rest: the 502-then-booked-later AddOrder (delayed_acceptance) is a REST answer; WS v2 add_order's
        # unanswered request is covered by tests/kraken/test_ws_order_entry.py.
        service, api = await d.service("svc", **wall.env(), EXECLEDGER_KRAKEN_ORDER_ENTRY="rest")
        status, body = await d.post(
            f"{api}/v1/signals",
            {
                "signal_id": "young",
                "pair": "XBT/USD",
                "side": "buy",
                "order_type": "limit",
                "quantity": "0.01",
                "limit_price": "60000",
                "timeout_s": 300,
            },
        )
        assert status == 201, body

        async def young_rests():
            return [o for o in await book(d) if o["side"] == "buy"]

        await wait_until(young_rests, timeout=15, what="the young entry resting", process=service)
        async with d.http.post(
            f"{d.sim_url}/_sim/faults", json={"path": "AddOrder", "kind": "delayed_acceptance", "seconds": 20}
        ) as r:
            assert r.status == 200
        status, body = await d.post(
            f"{api}/v1/signals",
            {"signal_id": "late", **SIGNAL, "order_type": "limit", "limit_price": "67500"},
        )
        assert status in (201, 202), body
        late = (await d.get(f"{api}/v1/orders/late"))["history"][0]["data"]["cl_ord_id"]

        async def unknown():
            return "SubmissionOutcomeUnknown" in await history(d, api, "late")

        await wait_until(unknown, timeout=15, what="the 502 recorded as an unknown outcome", process=service)
        for offset in ("+120", "+3600"):
            wall.step(offset)
            seen = await lookups(d, late)

            async def ticks(seen=seen):
                return await lookups(d, late) >= seen + 3  # three timer ticks have looked at the clock since

            await wait_until(ticks, timeout=15, what=f"three ticks after a {offset} s step", process=service)
            assert "Rejected" not in await history(d, api, "late")
            assert "TimedOut" not in await history(d, api, "young")

        # the venue books it (on its own clock, which did not step): it crosses the book and fills
        async def protected():
            legs = [o for o in await book(d) if o["side"] == "sell"]
            return "Filled" in await history(d, api, "late") and [D(o["volume"]) for o in legs] == [D("0.01")]

        await wait_until(protected, timeout=30, what="the late fill recorded and protected", process=service)
        events = await history(d, api, "late")
        assert "Rejected" not in events and events.count("Filled") == 1
        young = [o for o in await book(d) if o["side"] == "buy"]
        assert [D(o["price"]) for o in young] == [D("60000")] and "TimedOut" not in await history(d, api, "young")
        assert service.alive
        assert await service.terminate(20) == 0
