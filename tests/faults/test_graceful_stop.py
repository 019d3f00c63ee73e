"""A graceful stop (SIGTERM) in the middle of a burst: the service knows which AddOrders never left it, so none of
them may come back as an unknown outcome at the next start. An unknown outcome is resolved only after the submit
deadline (+5 s): an entry the trading system was told was accepted would be refused then, and a protective leg
would leave its position naked that long. Real processes, both stores.

The race it found (about 2 runs in 10, one order of the 20): a leg Submitted with its fill and not yet handed to
the adapter was recorded NotSent by the drain, and that NotSent's own reaction decided a new Submitted for it, which
nobody sent any more. A stopping service now decides no Submitted at all (``TradingService._sendable_now``); the
deterministic checks are in ``tests/test_stop_withdraws_unsent.py``. About 7 s for both stores.

While the service is down after the stop, every position that filled has its stop-loss resting on the venue: the
stop withdraws the entries at once but keeps sending protective legs (``EXECLEDGER_STOP_PROTECT_S``,
``tests/test_stop_protects_positions.py``).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from tests.faults.harness import wait_until
from tests.processes import Deployment

BURST = 20
SIGNAL = {
    "pair": "XBT/USD",
    "side": "buy",
    "order_type": "market",
    "quantity": "0.001",
    "sl_price": "30000",
    "tp_price": "130000",
}


async def sent_cl_ord_ids(d: Deployment) -> set[str]:
    """The cl_ord_id of every order the venue received, on either route (WS v2 add_order, REST AddOrder)."""
    sent: set[str] = set()
    for method in ("add_order", "AddOrder"):
        async with d.http.get(f"{d.sim_url}/_sim/requests", params={"method": method}) as r:
            sent |= {c["params"]["cl_ord_id"] for c in await r.json()}
    return sent


async def venue_orders(d: Deployment) -> list[dict]:
    """Every order the venue holds, open or closed: ``{cl_ord_id, ordertype, status, vol_exec, ...}``."""
    async with d.http.get(f"{d.sim_url}/_sim/orders") as r:
        open_now = [o for pair in (await r.json()).values() for o in pair["open"]]
    async with d.http.get(f"{d.sim_url}/_sim/history") as r:
        closed = await r.json()
    return list({o["cl_ord_id"]: o for o in [*closed, *open_now]}.values())  # one row per order, its latest


async def orders_of(d: Deployment, api: str, signal_id: str) -> list[dict]:
    """Each order of the signal with its event history: ``{cl_ord_id, events}``."""
    signal = await d.get(f"{api}/v1/signals/{signal_id}")
    orders = []
    for brief in signal["orders"]:
        detail = await d.get(f"{api}/v1/orders/{brief['order_id']}")
        orders.append(
            {
                "cl_ord_id": brief["client_order_id"],
                "role": brief["role"],
                "events": [h["event"] for h in detail["history"]],
            }
        )
    return orders


async def test_a_graceful_stop_leaves_no_unsent_addorder_with_an_unknown_outcome(tmp_path: Path, settings):
    async with Deployment(tmp_path, settings) as d:
        service, api = await d.service("svc", EXECLEDGER_SUBMIT_DEADLINE_S="30")
        posts = [
            asyncio.create_task(d.post(f"{api}/v1/signals", {"signal_id": f"g{i}", **SIGNAL})) for i in range(BURST)
        ]

        async def burst_on_the_wire():
            return len(await sent_cl_ord_ids(d)) >= 1

        await wait_until(burst_on_the_wire, timeout=30, what="the burst's first AddOrder", process=service)
        assert await service.terminate(30) == 0, service.tail()
        answers = await asyncio.gather(*posts, return_exceptions=True)
        accepted = [f"g{i}" for i, a in enumerate(answers) if not isinstance(a, BaseException) and a[0] == 201]
        sent_before_stop = await sent_cl_ord_ids(d)
        # While the service is down: every position that filled has its stop-loss resting on the venue (the stop
        # kept sending protective legs, entries withdrawn); before, most were withdrawn NotSent with the entries.
        on_venue = await venue_orders(d)
        filled = [o for o in on_venue if o["ordertype"] == "market" and Decimal(o["vol_exec"]) > 0]
        stops = [o for o in on_venue if o["ordertype"] == "stop-loss" and o["status"] == "open"]
        assert filled and len(stops) == len(filled), f"{len(filled)} positions filled, {len(stops)} stops resting"

        service, api = await d.service("svc-again", EXECLEDGER_SUBMIT_DEADLINE_S="30")
        unsent_unknown = [
            (signal_id, o["role"], o["cl_ord_id"], o["events"])
            for signal_id in accepted
            for o in await orders_of(d, api, signal_id)
            if "SubmissionOutcomeUnknown" in o["events"] and o["cl_ord_id"] not in sent_before_stop
        ]
        assert unsent_unknown == [], f"never sent, yet resolved as unknown after a graceful stop: {unsent_unknown}"

        async def every_accepted_entry_reached_the_venue():
            sent = await sent_cl_ord_ids(d)
            for signal_id in accepted:
                signal = await d.get(f"{api}/v1/signals/{signal_id}")
                entry = next(o for o in signal["orders"] if o["role"] == "entry")
                if entry["client_order_id"] not in sent:
                    return False
            return True

        # well within the submit deadline (30 s): what the stop withdrew is sent at once, not resolved later
        await wait_until(
            every_accepted_entry_reached_the_venue, timeout=15, what="the withdrawn entries sent", process=service
        )
