"""The demo: a shipped scenario run through every path against the in-process simulator, then the read side.

Stories: a market entry whose take-profit is hit (stop canceled), one whose stop is hit (take-profit canceled),
a limit entry that fills in part and times out (rest canceled, the filled part bracketed, then closed by its
take-profit), a HALT that refuses a new entry, and signals rejected for a field. Every position is closed at the
end, so a re-run against the same data directory (and a fresh simulator) finds nothing left open. Then: the
execution-report table, one audit timeline, a rebuild of
the read models compared with the live tables, and a replay of every recorded decision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from uuid import UUID

import aiohttp
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from execledger.application.audit import signal_timeline
from execledger.application.ledger import OrderNotFound
from execledger.application.replay import PolicyReplay
from execledger.application.service import ServiceConfig
from execledger.domain.order import Order
from execledger.domain.values import OrderRole, plain
from execledger.infrastructure.bootstrap import engine_config, open_ledger
from execledger.infrastructure.present import present_report
from execledger.infrastructure.readmodels import tables as t
from execledger.infrastructure.readmodels.queries import ListFilter
from execledger.infrastructure.render import print_rows, print_timeline
from execledger.infrastructure.settings import Settings

STEP_TIMEOUT_S = 20.0
DEMO_REPORT_COLUMNS = ("qty", "filled_qty", "avg_px", "fee", "note")


def _px(price: Decimal | None) -> str:
    return "?" if price is None else plain(price)  # an order the demo waited to see filled has its price


class Demo:
    def __init__(self, settings: Settings, console: Console):
        self.settings, self.console = settings, console
        self.run_id = f"{int(time.time()) % 1_000_000:06d}"  # signal ids are unique per run: re-runs add stories
        self._changed = asyncio.Condition()

    def sid(self, name: str) -> str:
        return f"demo-{self.run_id}-{name}"

    async def _saved(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def until(self, what: str, predicate: Callable[[], bool]) -> None:
        """Wait until the ledger shows ``predicate`` (woken by every save, no polling)."""

        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(reached(), STEP_TIMEOUT_S)
        except TimeoutError:
            raise RuntimeError(f"demo step did not complete within {STEP_TIMEOUT_S:g}s: {what}") from None

    def say(self, text: str) -> None:
        self.console.print(text)

    async def run(self) -> None:
        from execledger.infrastructure.runner import Role, run_service
        from execledger.infrastructure.simulator import KrakenSimulator

        async with KrakenSimulator(fill_fractions=(Decimal("0.4"),), tier=None) as sim:  # adapter: tier=None too
            settings = self.settings.with_exchange(url=sim.rest_url, ws_url=sim.ws_url, key=sim.key, secret=sim.secret)
            self.sim = sim
            stop = asyncio.Event()
            ready: asyncio.Future = asyncio.get_running_loop().create_future()
            config = ServiceConfig(tick_interval_s=0.1, deadman_timeout_s=60, price_poll_s=0.2)
            service = asyncio.create_task(
                run_service(
                    settings, role=Role.ALL, stop=stop, on_ready=ready.set_result, service_config=config, api_port=0
                )
            )
            try:
                running = await asyncio.wait_for(asyncio.shield(ready), STEP_TIMEOUT_S)
                self.lg, self.engine, self.api = running.ledger, running.ledger.engine, running.api_url
                loop = asyncio.get_running_loop()
                self.engine.uow.add_listener(lambda committed: loop.create_task(self._saved()))
                async with aiohttp.ClientSession() as self.http:
                    self.say(
                        f"[bold]execledger demo[/bold] run {self.run_id}: simulator {sim.rest_url}, API {self.api}, "
                        f"ledger {'PostgreSQL' if settings.database_url else settings.data_dir.resolve()}"
                    )
                    await self.story_take_profit()
                    await self.story_stop_loss()
                    await self.story_partial_timeout()
                    await self.story_halt()
                    await self.story_rejections()
            finally:
                stop.set()
                await service
            with open_ledger(settings) as lg:
                self.lg = lg
                self.read_side()

    # --- stories --------------------------------------------------------------------------------------------

    async def post(self, path: str, body: dict) -> tuple[int, dict]:
        """POST to the service's HTTP API, as a trading system or an operator would."""
        async with self.http.post(self.api + path, json=body) as resp:
            return resp.status, await resp.json()

    async def signal(self, name: str, **fields) -> Order:
        status, body = await self.post("/v1/signals", {"signal_id": self.sid(name), **fields})
        if status != 201:
            raise RuntimeError(f"signal {name} was not placed: HTTP {status} {body}")
        return self.engine.orders[UUID(body["order_id"])]

    def o(self, order: Order) -> Order:
        return self.engine.orders[order.id]

    def legs(self, entry: Order, role: OrderRole) -> list[Order]:
        return [o for o in self._exits(entry) if o.role is role]

    def legs_open(self, entry: Order) -> bool:
        legs = self._exits(entry)
        return len(legs) >= 1 and all(o.txid for o in legs)

    def _exits(self, entry: Order) -> list[Order]:
        """The entry's exit orders (a finished signal is loaded again from the store: the engine retires it)."""
        entry = self.engine.orders[entry.id]
        return [self.engine.orders[i] for i in entry.exit_order_ids()]

    async def story_take_profit(self) -> None:
        self.say("\n[1/5] market entry, then the take-profit is reached")
        entry = await self.signal(
            "tp", pair="XBT/USD", side="buy", order_type="market", quantity="0.01", sl_price="64000", tp_price="68000"
        )
        await self.until("entry filled and bracketed", lambda: self.legs_open(entry))
        self.say(
            f"      entry filled {plain(self.o(entry).filled_quantity)} @ {_px(self.o(entry).average_fill_price)}; "
            f"stop 64000 resting on the venue, take-profit 68000 held by the ledger on the public price (the venue "
            f"holds the bitcoin for the stop)"
        )
        self.sim.set_mark_price("XBT/USD", "68010")
        [sl] = self.legs(entry, OrderRole.STOP_LOSS)
        await self.until(
            "take-profit triggered and filled, stop canceled",
            lambda: (
                any(o.state.value == "filled" for o in self.legs(entry, OrderRole.TAKE_PROFIT))
                and self.o(sl).state.value == "canceled"
            ),
        )
        [tp] = self.legs(entry, OrderRole.TAKE_PROFIT)
        self.say(
            f"      price 68010 crossed the take-profit: the stop was canceled, then the position sold at market @ "
            f"{_px(self.o(tp).average_fill_price)}"
        )

    async def story_stop_loss(self) -> None:
        self.say("\n[2/5] market entry, then the stop-loss is hit")
        entry = await self.signal(
            "sl", pair="ETH/USD", side="buy", order_type="market", quantity="0.5", sl_price="3400", tp_price="3700"
        )
        await self.until("entry filled and bracketed", lambda: self.legs_open(entry))
        self.sim.set_mark_price("ETH/USD", "3390")
        [sl] = self.legs(entry, OrderRole.STOP_LOSS)
        await self.until("stop filled", lambda: self.o(sl).state.value == "filled")
        self.say(
            f"      stop filled @ {_px(self.o(sl).average_fill_price)}; the take-profit the ledger held was not needed"
        )

    async def story_partial_timeout(self) -> None:
        self.say("\n[3/5] limit entry fills in part, then times out")
        self.sim.set_mark_price("XBT/USD", "68000")
        entry = await self.signal(
            "partial",
            pair="XBT/USD",
            side="buy",
            order_type="limit",
            quantity="0.02",
            limit_price="67500",
            sl_price="66000",
            tp_price="70000",
            timeout_s=2,
        )
        self.partial_signal = self.sid("partial")
        await self.until("entry resting", lambda: self.o(entry).txid is not None)
        self.sim.set_mark_price("XBT/USD", "67490")  # crosses once: 40% fills
        self.sim.set_mark_price("XBT/USD", "68000")
        await self.until("partial fill bracketed", lambda: self.legs_open(entry))
        self.say(f"      filled {plain(self.o(entry).filled_quantity)} of 0.02; the stop protects that part")
        await self.until("timed out and canceled", lambda: self.o(entry).state.value == "canceled")
        self.say(
            f"      timed out after 2 s: the rest was canceled; the stop still protects "
            f"{plain(self.o(entry).filled_quantity)}"
        )
        self.sim.set_mark_price("XBT/USD", "70010")  # the take-profit closes what was filled; nothing is left open
        [sl] = self.legs(entry, OrderRole.STOP_LOSS)
        await self.until(
            "position closed",
            lambda: (
                any(o.state.value == "filled" for o in self.legs(entry, OrderRole.TAKE_PROFIT))
                and self.o(sl).is_terminal
            ),
        )
        [tp] = self.legs(entry, OrderRole.TAKE_PROFIT)
        self.say(
            f"      take-profit reached: sold {plain(self.o(tp).filled_quantity)} @ "
            f"{_px(self.o(tp).average_fill_price)} at market; stop canceled; position closed"
        )

    async def story_halt(self) -> None:
        self.say("\n[4/5] HALT refuses a new entry")
        status, body = await self.post("/v1/trading/halt", {"by": "demo", "reason": "scheduled maintenance"})
        self.say(f"      POST /v1/trading/halt: {status} {body['outcome']} by {body['applied_by']}")
        status, body = await self.post(
            "/v1/signals",
            {
                "signal_id": self.sid("halted"),
                "pair": "XBT/USD",
                "side": "buy",
                "order_type": "market",
                "quantity": "0.01",
            },
        )
        self.say(f"      POST /v1/signals: {status} {escape(body['error'])}")
        status, body = await self.post("/v1/trading/resume", {"by": "demo", "reason": "maintenance over"})
        self.say(f"      POST /v1/trading/resume: {status} {body['outcome']}")

    async def story_rejections(self) -> None:
        self.say("\n[5/5] invalid signals are rejected, naming the field (nothing written)")
        for name, fields in (
            ("bad-sl", {"limit_price": "60000", "sl_price": "61000", "order_type": "limit"}),
            ("tiny", {"order_type": "market", "quantity": "0.00001"}),
        ):
            body = {"signal_id": self.sid(name), "pair": "XBT/USD", "side": "buy", "quantity": "0.01", **fields}
            status, answer = await self.post("/v1/signals", body)
            errors = "; ".join(f"{e['field']}: {e['message']} [{e['rule']}]" for e in answer.get("errors", []))
            self.say(f"      {status}: " + escape(errors))

    # --- the read side ------------------------------------------------------------------------------------

    def read_side(self) -> None:
        lg = self.lg
        lg.projector.catch_up()
        page = lg.queries.execution_reports(ListFilter(limit=1000))
        mine = [r for r in page.items if str(r["signal_id"]).startswith(f"demo-{self.run_id}-")]
        rules = lg.queries.cancel_reasons([r["order_id"] for r in mine if r["event"] in ("Canceled", "Expired")])
        self.say("")
        print_rows(
            self.console,
            f"execution reports of this run: {len(mine)} (times UTC; the same with `execledger report reports`)",
            [present_report(r, lg.pairs, rules) for r in mine],
            [*("time", "signal_id", "role", "event", "pair", "side", "type", "status"), *DEMO_REPORT_COLUMNS],
        )
        try:
            entry, orders, timeline = signal_timeline(lg.ledger, self.partial_signal)
            self.say("")
            print_timeline(self.console, entry, orders, timeline)
        except OrderNotFound:  # pragma: no cover - the story always records it
            pass
        live = _snapshot(lg)
        events = lg.projector.rebuild()
        same = _snapshot(lg) == live
        self.say(
            f"\nprojections rebuilt from {events} events: "
            + ("[green]identical to the live tables[/green]" if same else "[red]DIFFERENT from the live tables[/red]")
        )
        result = PolicyReplay(lg.app, lg.ledger.pairs, engine_config(self.settings).policy).run()
        self.say(
            f"replay: {result.decisions_checked} recorded decisions re-derived from {result.events} events, "
            + ("[green]0 differ[/green]" if result.ok else f"[red]{len(result.differences)} differ[/red]")
        )
        self.say(
            f"\nthe ledger stays in {escape(str(self.settings.data_dir))}: try `execledger report signals`, "
            f"`execledger audit {self.partial_signal}`, `execledger replay`"
        )
        if not same or not result.ok:
            raise RuntimeError("the demo's read-side checks failed")


def _snapshot(lg) -> dict:
    out = {}
    with lg.db.connect() as conn:
        for table in t.VIEW_TABLES:
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
    return out


def run_demo(settings: Settings, console: Console | None = None) -> None:
    asyncio.run(Demo(settings, console or Console()).run())
