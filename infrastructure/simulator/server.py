"""``KrakenSimulator``: the matching core behind Kraken's REST and WS v2 wire protocol, on one aiohttp server.

async with KrakenSimulator(seed=1) as sim:
    sim.rest_url, sim.ws_url, sim.key, sim.secret   # point a Kraken client here
    sim.set_mark_price("XBT/USD", "65000")          # control methods (also under /_sim/...)
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from decimal import Decimal
from typing import Any

from aiohttp import web

from execledger.domain.pairs import PairRegistry, PairRules
from execledger.domain.values import to_decimal
from execledger.infrastructure.kraken.auth import decode_secret

from . import control, rest, ws
from .appkey import SIMULATOR
from .clock import SimClock
from .config import SimulatorConfig
from .engine import Exchange, Fees, SimOrder, SimTrade
from .faults import Fault, FaultKind, FaultPlan
from .ids import IdFactory
from .limits import RestCallLimiter, TradingLimiter
from .prices import SHIPPED_TAPES, PricePath, load_trade_tape
from .requestlog import RequestLog, RequestRecord
from .ws import ExecutionsConnection

WALL_CLOCK_TICK = 0.2  # seconds between timer sweeps (dead man's switch, expiry) when following wall time


def _build_exchange(config: SimulatorConfig, pairs: PairRegistry, clock: SimClock) -> Exchange:
    rng = random.Random(config.seed)
    paths: dict[str, PricePath] = {}
    fees: dict[str, Fees] = {}
    for pair in pairs:
        tape = None
        if config.price_source == "csv":
            tape = load_trade_tape(config.tapes.get(pair.key) or SHIPPED_TAPES[pair.key])
        start = to_decimal(config.start_prices.get(pair.key, "100"))
        paths[pair.key] = PricePath(start, pair.pair_decimals, rng, config.volatility, tape)
        info = config.asset_pairs[pair.key]
        fees[pair.key] = Fees(
            maker_pct=config.maker_fee_pct
            if config.maker_fee_pct is not None
            else Decimal(str(info["fees_maker"][0][1])),
            taker_pct=config.taker_fee_pct if config.taker_fee_pct is not None else Decimal(str(info["fees"][0][1])),
        )
    exchange = Exchange(pairs, paths, fees, IdFactory(config.seed), clock.now, tuple(config.fill_fractions))
    exchange.open_account(config.key, {a: to_decimal(v) for a, v in config.balances.items()})
    return exchange


class KrakenSimulator:
    """A local Kraken Spot: ``KrakenSimulator(host="127.0.0.1", port=0, seed=1, **SimulatorConfig fields)``."""

    def __init__(self, config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, **fields: Any):
        self.config = dataclasses.replace(config or SimulatorConfig(), **fields)
        self.host, self.port = host, port
        self.clock = SimClock(self.config.clock_start)
        self.asset_pairs = self.config.asset_pairs
        self.pairs = PairRegistry.from_asset_pairs(self.asset_pairs)
        self.engine = _build_exchange(self.config, self.pairs, self.clock)
        self.secrets = {self.config.key: decode_secret(self.config.secret_b64())}
        self.last_nonce: dict[str, int] = {}
        self.ws_tokens: dict[str, str] = {}
        self.faults = FaultPlan()
        self.request_log = RequestLog()
        self.rest_limiter = RestCallLimiter(self.config.rest_tier) if self.config.rest_tier else None
        self.trading_limiter = TradingLimiter(self.config.trading_tier) if self.config.trading_tier else None
        self.max_rate_count = int(self.config.trading_tier.limit) if self.config.trading_tier else 125
        self.heartbeat_interval = self.config.heartbeat_interval
        self.ws_connections: set[ExecutionsConnection] = set()
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self._held_replies: set[asyncio.Task] = set()

    # -- lifecycle -------------------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application: Kraken REST, WS v2 and ``/_sim`` controls."""
        app = web.Application()
        app[SIMULATOR] = self
        rest.add_routes(app)
        ws.add_routes(app)
        control.add_routes(app)
        return app

    async def start(self) -> KrakenSimulator:
        """Bind (port 0 picks a free port) and serve in the running event loop."""
        self._runner = web.AppRunner(self.make_app(), shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # port 0 -> the real one
        if not self.clock.frozen:
            self._ticker = asyncio.create_task(self._tick_forever())
        return self

    async def stop(self) -> None:
        """Close WS connections and the server."""
        if self._ticker is not None:
            self._ticker.cancel()
        for conn in list(self.ws_connections):
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> KrakenSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(WALL_CLOCK_TICK)
            self.engine.tick()

    # -- connection details ---------------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        """The REST origin (``http://127.0.0.1:PORT``); Kraken paths ``/0/public/...`` hang below it."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The WS v2 auth endpoint, derived from the REST URL (``ws://127.0.0.1:PORT/v2``)."""
        return f"ws://{self.host}:{self.port}/v2"

    @property
    def key(self) -> str:
        """The API key clients must send."""
        return self.config.key

    @property
    def secret(self) -> str:
        """The base64 API secret clients sign with."""
        return self.config.secret_b64()

    def issue_ws_token(self, key: str) -> str:
        """A new WS token for ``key`` (GetWebSocketsToken)."""
        token = self.engine.ids.ws_token()
        self.ws_tokens[token] = key
        return token

    async def hold_reply(self, seconds: float) -> None:
        """Sleep before replying (the delay-reply fault); wall seconds, since the client's timeout is wall time."""
        await asyncio.sleep(seconds)

    # -- control surface (also served under /_sim/...) ------------------------------------------------------

    def pair(self, name: str) -> PairRules:
        """A pair by key, altname or wsname."""
        found = self.pairs.find(name)
        if found is None:
            raise KeyError(f"unknown pair {name!r}")
        return found

    def mark_price(self, pair: str) -> Decimal:
        """The pair's current mark."""
        return self.engine.mark(self.pair(pair))

    def set_mark_price(self, pair: str, price: Decimal | str) -> None:
        """Jump the pair's mark; resting orders and triggers react at once."""
        self.engine.set_mark(self.pair(pair), to_decimal(price))

    def advance_price(self, pair: str | None = None, steps: int = 1) -> dict[str, Decimal]:
        """Take ``steps`` steps along the price path of one pair (or every pair); returns the new marks."""
        chosen = [self.pair(pair)] if pair else list(self.pairs)
        return {p.key: self.engine.step(p, steps) for p in chosen}

    def advance_time(self, seconds: float) -> float:
        """Move simulator time forward and run what became due (delayed acceptance, expiry, dead man's switch)."""
        now = self.clock.advance(seconds)
        self.engine.tick()
        return now

    def inject_fault(self, path: str, kind: FaultKind | str, count: int = 1, seconds: float = 0.0) -> Fault:
        """Make the next ``count`` calls to ``path`` (``AddOrder`` or ``/0/private/AddOrder``) misbehave."""
        return self.faults.inject(path, kind, count, seconds)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self.faults.clear()

    def requests(self, method: str | None = None, cl_ord_id: str | None = None) -> list[RequestRecord]:
        """The REST request log, optionally only one method and/or one ``cl_ord_id``."""
        return self.request_log.calls(method, cl_ord_id)

    def balances(self, key: str | None = None) -> dict[str, Decimal]:
        """The account's balances."""
        return dict(self.engine.account(key or self.key).balances)

    def set_balance(self, asset: str, amount: Decimal | str, key: str | None = None) -> None:
        """Set one asset's balance."""
        self.engine.account(key or self.key).balances[asset] = to_decimal(amount)

    def orders(self, key: str | None = None) -> list[SimOrder]:
        """Every order of the account, oldest first."""
        return sorted(self.engine.account(key or self.key).orders.values(), key=lambda o: o.seq)

    def trades(self, key: str | None = None) -> list[SimTrade]:
        """Every trade of the account, oldest first."""
        return sorted(self.engine.account(key or self.key).trades.values(), key=lambda t: t.trade_id)

    def set_system_status(self, status: str) -> None:
        """``online``, ``maintenance``, ``cancel_only`` or ``post_only`` (served by SystemStatus, gates AddOrder)."""
        if status not in ("online", "maintenance", "cancel_only", "post_only"):
            raise ValueError(f"unknown system status {status!r}")
        self.engine.system_status = status

    async def ws_disconnect(self, code: int = 1001, message: str = "CloudFlare WebSocket proxy restarting") -> int:
        """Close every WS connection (the Cloudflare restart); returns how many were closed."""
        conns = list(self.ws_connections)
        for conn in conns:
            await conn.ws.close(code=code, message=message.encode())
        return len(conns)

    def ws_stall(self) -> int:
        """Silence every open WS connection (no updates, heartbeats or pongs) until ``ws_resume``."""
        for conn in self.ws_connections:
            conn.stalled = True
        return len(self.ws_connections)

    def ws_resume(self) -> None:
        """End a ``ws_stall``: messages flow again (those sent meanwhile stay lost)."""
        for conn in self.ws_connections:
            conn.stalled = False
