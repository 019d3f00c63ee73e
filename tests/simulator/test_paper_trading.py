"""Paper trading: ``execledger run --paper`` trades against the simulator's matching core driven by a public price
feed. There is no network here, so Kraken's public feed is played by a second simulator replaying a recorded
SOL/USD tape (its public WS v2 ``trade``/``ticker`` channels and REST ``Ticker``)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest
from click.testing import CliRunner

from execledger.application.service import ServiceConfig
from execledger.domain.order import State
from execledger.domain.values import OrderRole
from execledger.infrastructure.runner import run_service
from execledger.infrastructure.simulator import KrakenSimulator
from execledger.infrastructure.simulator.embedded import PaperConfigError, build_simulator

D = Decimal


async def start(settings, service_config: ServiceConfig | None = None):
    stop, ready = asyncio.Event(), asyncio.Queue()
    task = asyncio.create_task(
        run_service(
            settings,
            stop=stop,
            on_ready=ready.put_nowait,
            api_port=0,
            service_config=service_config or ServiceConfig(tick_interval_s=0.05),
        )
    )
    getter = asyncio.create_task(ready.get())
    done, _ = await asyncio.wait({task, getter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        getter.cancel()
        task.result()
    return stop, task, getter.result()


async def buy_sol_with_a_bracket(running, signal_id: str) -> None:
    """POST a market buy of 10 SOL/USD with a stop at 18.70 and a take-profit at 18.98; it must be placed (201)."""
    async with aiohttp.ClientSession() as http:
        answer = await http.post(
            f"{running.api_url}/v1/signals",
            json={
                "signal_id": signal_id,
                "pair": "SOL/USD",
                "side": "buy",
                "order_type": "market",
                "quantity": "10",
                "sl_price": "18.70",
                "tp_price": "18.98",
            },
        )
        assert answer.status == 201, await answer.text()


class Ledger:
    """Waits on the ledger's commits (every change is one) until a condition holds."""

    def __init__(self, running):
        self.engine = running.ledger.engine
        self.changed = asyncio.Event()
        self.engine.uow.add_listener(lambda committed: self.changed.set())

    def orders(self, role: OrderRole):
        """Every order of this role in the log (a finished signal is no longer held by the engine)."""
        return [o for o in self.engine.ledger.load_orders(everything=True) if o.role is role]

    async def until(self, condition, what: str, timeout: float = 60) -> None:
        async def reached() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            raise AssertionError(f"the ledger never reached: {what}") from None


async def test_paper_trading_places_fills_and_brackets_a_sol_usd_signal_on_a_recorded_tape(settings):
    async with KrakenSimulator(tier=None) as market:  # "Kraken's public feed": the recorded tape, row by row
        tape = market.play_tape("SOL/USD", "solusd_trades.csv", speed=None)
        tape.step(1)  # 2023-07-01 00:00:49, 18.89
        paper = settings.model_copy(
            update={
                "paper": True,
                "paper_feed_url": market.public_ws_url,
                "paper_rest_url": market.rest_url,
                "paper_balances": "ZUSD=1000,SOL=10",  # SOL on hand: both legs can hold what they sell
                "resting_leg": "both",  # so both rest on the paper book (the emulated take-profit: its own test)
            }
        )
        stop, task, running = await start(paper)
        try:
            venue = running.simulator
            assert venue is not None and venue.price_feed is not None
            assert venue.balances() == {"ZUSD": D("1000"), "SOL": D("10")}
            ledger = Ledger(running)
            await buy_sol_with_a_bracket(running, "paper-sol-1")
            await ledger.until(
                lambda: (
                    [o.state for o in ledger.orders(OrderRole.ENTRY)] == [State.FILLED]
                    and {o.state for o in ledger.orders(OrderRole.STOP_LOSS) + ledger.orders(OrderRole.TAKE_PROFIT)}
                    == {State.OPEN}
                ),
                "entry filled and both legs on the paper book",
            )
            entry = ledger.orders(OrderRole.ENTRY)[0]
            assert entry.average_fill_price == D("18.89")  # filled at the live (tape) price, not a seeded walk
            for _ in range(tape.position, len(tape.rows)):  # play the tape until the take-profit fills
                if any(o.state is State.FILLED for o in ledger.orders(OrderRole.TAKE_PROFIT)):
                    break
                seen = venue.price_feed.trades_seen
                tape.step(1)
                await asyncio.wait_for(venue.price_feed.until_trades(seen + 1), 30)  # the row reached the venue
            await ledger.until(
                lambda: (
                    [o.state for o in ledger.orders(OrderRole.TAKE_PROFIT)] == [State.FILLED]
                    and [o.state for o in ledger.orders(OrderRole.STOP_LOSS)] == [State.CANCELED]
                ),
                "take-profit filled and the stop canceled",
            )
            take = ledger.orders(OrderRole.TAKE_PROFIT)[0]
            assert take.average_fill_price >= D("18.98") and take.filled_quantity == D("10")
            trades = venue.trades()
            assert [(t.side.value, t.vol) for t in trades] == [("buy", D("10")), ("sell", D("10"))]
            assert venue.price_feed.trades_seen > 0  # prices came over the public WS feed
            assert not [r for r in market.requests() if r.path.startswith("/0/private")]  # no order left
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def test_a_take_profit_the_account_cannot_fund_is_held_by_the_ledger_and_fired_by_the_public_stream(settings):
    """Only the SOL bought is on hand, so the venue holds it for the untriggered stop (a take-profit beside it would
    be refused for funds): the stop rests, the ledger holds the take-profit, and the first public trade through it
    (WS v2 ``trade`` of the paper venue, not a REST poll) cancels the stop and exits at market."""
    async with KrakenSimulator(tier=None) as market:
        tape = market.play_tape("SOL/USD", "solusd_trades.csv", speed=None)
        tape.step(1)  # 18.89
        paper = settings.model_copy(
            update={
                "paper": True,
                "paper_feed_url": market.public_ws_url,
                "paper_rest_url": market.rest_url,
                "paper_balances": "ZUSD=1000",
            }
        )
        polls = ServiceConfig(tick_interval_s=0.05, price_poll_s=3600.0)  # REST Ticker never: the stream decides
        stop, task, running = await start(paper, polls)
        try:
            venue = running.simulator
            ledger = Ledger(running)
            await buy_sol_with_a_bracket(running, "paper-sol-2")
            await ledger.until(
                lambda: (
                    [o.state for o in ledger.orders(OrderRole.STOP_LOSS)] == [State.OPEN]
                    and not ledger.orders(OrderRole.TAKE_PROFIT)
                ),
                "the stop resting alone, the take-profit held by the ledger",
            )

            def triggered() -> bool:
                entry = ledger.orders(OrderRole.ENTRY)[0]
                return bool(entry.brackets and entry.brackets[0].triggered)

            for _ in range(tape.position, len(tape.rows)):  # play the tape up to the first trade through 18.98
                row = tape.rows[tape.position]
                seen = venue.price_feed.trades_seen
                tape.step(1)
                await asyncio.wait_for(venue.price_feed.until_trades(seen + 1), 30)
                if row.price >= D("18.98"):  # the ledger hears it on the public stream: the tape waits for it
                    await ledger.until(triggered, "the take-profit's trigger crossed")
                    break
            await ledger.until(
                lambda: (
                    [o.state for o in ledger.orders(OrderRole.TAKE_PROFIT)] == [State.FILLED]
                    and [o.state for o in ledger.orders(OrderRole.STOP_LOSS)] == [State.CANCELED]
                ),
                "the take-profit fired at market and the stop canceled",
            )
            entry = ledger.orders(OrderRole.ENTRY)[0]
            assert list(entry.brackets[0].triggered) == ["take_profit"]
            assert entry.brackets[0].triggered["take_profit"] >= D("18.98")  # the public trade that crossed it
            take = ledger.orders(OrderRole.TAKE_PROFIT)[0]
            assert take.order_type.value == "market" and take.filled_quantity == D("10")
            assert [(t.side.value, t.vol) for t in venue.trades()] == [("buy", D("10")), ("sell", D("10"))]
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def test_paper_venue_refuses_an_order_on_a_pair_without_a_live_price(settings):
    async with KrakenSimulator(tier=None) as market:
        paper = settings.model_copy(
            update={"paper": True, "paper_feed_url": market.public_ws_url, "paper_rest_url": None}
        )
        venue = build_simulator(paper)
        async with venue:
            from .conftest import WireClient

            async with aiohttp.ClientSession() as session:
                wire = WireClient(session, venue)
                order = {"pair": "ADAUSD", "type": "buy", "ordertype": "market", "volume": "10"}
                assert await wire.call("AddOrder", order) == {"error": ["EService:Unavailable"]}
                market.set_mark_price("ADA/USD", "0.3512")  # the feed now has a price: it is followed
                await asyncio.wait_for(venue.price_feed.subscribed("ADAUSD"), 30)
                market.set_mark_price("ADA/USD", "0.3513")
                await asyncio.wait_for(venue.price_feed.priced_event("ADAUSD").wait(), 30)
                assert (await wire.result("AddOrder", order))["txid"]
                assert venue.trades()[-1].price == D("0.3513")


def test_paper_with_a_venue_url_is_a_configuration_error(settings):
    with pytest.raises(PaperConfigError, match="EXECLEDGER_KRAKEN_URL"):
        build_simulator(settings.model_copy(update={"paper": True, "kraken_url": "https://api.kraken.com"}))
    with pytest.raises(PaperConfigError, match="EXECLEDGER_PAPER_PAIRS"):
        build_simulator(settings.model_copy(update={"paper": True, "paper_pairs": "SOL/USD,NOPE/USD"}))


def test_run_paper_with_a_venue_url_exits_3_naming_it(monkeypatch, tmp_path):
    from execledger.infrastructure.cli import main

    monkeypatch.setenv("EXECLEDGER_KRAKEN_URL", "https://api.kraken.com")
    monkeypatch.setenv("EXECLEDGER_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["run", "--paper"])
    assert result.exit_code == 3 and "EXECLEDGER_KRAKEN_URL" in result.output
