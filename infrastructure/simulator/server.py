"""``KrakenSimulator``: the matching core behind Kraken's REST and WS v2 wire protocol, on one aiohttp server.

async with KrakenSimulator(seed=1) as sim:
    sim.rest_url, sim.ws_url, sim.public_ws_url, sim.key, sim.secret   # point a Kraken client here
    sim.set_mark_price("SOL/USD", "142.5")                             # control methods (also under /_sim/...)
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from decimal import Decimal
from typing import Any

from aiohttp import web

from execledger.domain.pairs import PairRules
from execledger.domain.values import to_decimal
from execledger.infrastructure.kraken.auth import decode_secret
from execledger.infrastructure.kraken.wire import WS_V2_ASSET_NAMES, ws_symbol_of

from . import control, rest, ws
from .appkey import SIMULATOR
from .catalog import asset_altnames, derive_assets, registry_for, seed_prices
from .clock import SimClock
from .config import FROM_TIER, SimulatorConfig
from .engine import SYSTEM_STATUSES, Exchange, Fees, SimOrder, SimTrade
from .faults import Fault, FaultKind, FaultPlan
from .ids import IdFactory
from .limits import PublicLimiter, RestCallLimiter, TradingLimiter
from .market import MarketData
from .methods import PRIVATE, PUBLIC
from .nonces import NonceBook
from .prices import SHIPPED_TAPES, PricePath, TapePlayer, load_tape, load_trade_tape
from .requestlog import RequestLog, RequestRecord

WALL_CLOCK_TICK = 0.2  # seconds between timer sweeps (dead man's switch, expiry, tapes) when following wall time
DEFAULT_FEES = Fees(maker_pct=Decimal("0.25"), taker_pct=Decimal("0.4"))  # the captured Starter schedule's first row
TIER_FIELDS = ("rest_tier", "trading_tier", "max_open_orders_per_pair", "public_burst")


def _fees(info: dict[str, Any], config: SimulatorConfig) -> Fees:
    def first(name: str, fallback: Decimal) -> Decimal:
        rows = info.get(name) or []
        return Decimal(str(rows[0][1])) if rows else fallback

    return Fees(
        maker_pct=config.maker_fee_pct
        if config.maker_fee_pct is not None
        else first("fees_maker", DEFAULT_FEES.maker_pct),
        taker_pct=config.taker_fee_pct if config.taker_fee_pct is not None else first("fees", DEFAULT_FEES.taker_pct),
    )


class KrakenSimulator:
    """A local Kraken Spot: ``KrakenSimulator(host="127.0.0.1", port=0, seed=1, **SimulatorConfig fields)``."""

    def __init__(self, config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0, **fields: Any):
        if config is None:
            self.config = SimulatorConfig(**fields)
        else:
            if "tier" in fields:  # a new tier re-derives the limits it sets, unless they are given too
                for name in TIER_FIELDS:
                    fields.setdefault(name, FROM_TIER)
            self.config = dataclasses.replace(config, **fields)
        self.host, self.port = host, port
        self.clock = SimClock(self.config.clock_start)
        self.asset_pairs: dict[str, Any] = self.config.asset_pairs
        self.pairs = registry_for(self.asset_pairs)
        self._index_names()
        self.engine = self._build_exchange()
        self.market = MarketData(self.engine.mark)
        self.engine.market_listeners.append(self.market.on_trade)
        self.secrets = {self.config.key: decode_secret(self.config.secret_b64())}
        self.api_keys = {self.config.key: self.config.key}  # API key -> the account it trades for
        self.nonces = NonceBook(self.config.nonce_window)
        self.ws_tokens: dict[str, str] = {}
        self.faults = FaultPlan(frozenset(PUBLIC) | frozenset(PRIVATE))
        self.request_log = RequestLog()
        self.rest_limiter = RestCallLimiter(self.config.rest_tier) if self.config.rest_tier else None
        self.trading_limiter = TradingLimiter(self.config.trading_tier) if self.config.trading_tier else None
        self.public_limiter = PublicLimiter(self.config.public_burst) if self.config.public_burst else None
        self.max_rate_count = int(self.config.trading_tier.limit) if self.config.trading_tier else 125
        self.heartbeat_interval = self.config.heartbeat_interval
        self.ws_connections: set[Any] = set()
        self.tapes: dict[str, TapePlayer] = {}
        self.price_feed: Any = None  # paper trading: a live public feed that sets the marks (feed.LivePriceFeed)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        if self.config.tape_speed is not None:
            for pair, source in self.config.tapes.items():
                self.play_tape(pair, source, self.config.tape_speed)

    def _build_exchange(self) -> Exchange:
        config = self.config
        rng = random.Random(config.seed)
        seeds = seed_prices(self.asset_pairs)
        paths: dict[str, PricePath] = {}
        fees: dict[str, Fees] = {}
        for pair in self.pairs:
            tape = None
            if config.price_source == "csv":
                source = config.tapes.get(pair.key) or SHIPPED_TAPES.get(pair.key)
                tape = load_trade_tape(source) if source else None
            start = to_decimal(config.start_prices.get(pair.key, seeds[pair.key]))
            paths[pair.key] = PricePath(start, pair.pair_decimals, rng, config.volatility, tape)
            fees[pair.key] = _fees(self.asset_pairs[pair.key], config)
        exchange = Exchange(
            lambda: self.pairs, paths, fees, IdFactory(config.seed), self.clock.now, tuple(config.fill_fractions)
        )
        exchange.hold_untriggered = config.hold_untriggered_stops
        exchange.max_open_per_pair = config.max_open_orders_per_pair
        account = exchange.open_account(config.key, {a: to_decimal(v) for a, v in config.balances.items()})
        account.fee_in_base_default = config.fee_in_base_default
        return exchange

    def _index_names(self) -> None:
        self._asset_pairs_body: str | None = None
        self.asset_names = asset_altnames(self.asset_pairs)
        self.assets = derive_assets(self.asset_pairs)
        self._ws_symbols = {ws_symbol_of(p.wsname): p for p in self.pairs}

    # -- lifecycle -------------------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application: Kraken REST, WS v2 (authenticated and public) and ``/_sim`` controls."""
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
        if self.price_feed is not None:
            await self.price_feed.start()
        return self

    async def stop(self) -> None:
        """Stop the feed, close WS connections and the server."""
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self.price_feed is not None:
            await self.price_feed.stop()
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
            waits = [w for w in (p.next_due_in() for p in self.tapes.values()) if w is not None]
            await asyncio.sleep(min([WALL_CLOCK_TICK, *waits]))
            self.tick()

    def tick(self) -> None:
        """Run what simulator time makes due: tape rows, delayed acceptances, starts, expiry, dead man's switches."""
        for player in self.tapes.values():
            player.play_due()
        self.engine.tick()

    # -- connection details ---------------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        """The REST origin (``http://127.0.0.1:PORT``); Kraken paths ``/0/public/...`` hang below it."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The authenticated WS v2 endpoint (``ws://127.0.0.1:PORT/v2``, Kraken's ``ws-auth.kraken.com/v2``)."""
        return f"ws://{self.host}:{self.port}/v2"

    @property
    def public_ws_url(self) -> str:
        """The public WS v2 endpoint (``ws://127.0.0.1:PORT/public/v2``, Kraken's ``ws.kraken.com/v2``)."""
        return f"ws://{self.host}:{self.port}/public/v2"

    @property
    def key(self) -> str:
        """The API key clients must send."""
        return self.config.key

    @property
    def secret(self) -> str:
        """The base64 API secret clients sign with."""
        return self.config.secret_b64()

    @property
    def last_nonce(self) -> dict[str, int]:
        """The last nonce accepted per key (writable: set one to play another client's larger nonce)."""
        return self.nonces.last

    def add_api_key(self, key: str, secret: str | None = None, account: str | None = None) -> str:
        """Another API key on the account (Kraken keys share the account's funds and orders but each has its own
        nonce and REST counter); returns its base64 secret."""
        import base64

        if secret is None:
            secret = base64.b64encode(random.Random(f"secret-{key}").randbytes(64)).decode()
        self.secrets[key] = decode_secret(secret)
        self.api_keys[key] = account or self.key
        return secret

    def issue_ws_token(self, key: str) -> str:
        """A new WS token for ``key`` (GetWebSocketsToken)."""
        token = self.engine.ids.ws_token()
        self.ws_tokens[token] = key
        return token

    async def hold_reply(self, seconds: float) -> None:
        """Sleep in this request's task (held replies); wall seconds, since the client's timeout is wall time."""
        await asyncio.sleep(seconds)

    # -- lookups ---------------------------------------------------------------------------------------------------

    def find_pair(self, name: str) -> PairRules | None:
        """A pair by AssetPairs key, altname, wsname or WS v2 symbol (``BTC/USD``, ``DOGE/USD``)."""
        return self.pairs.find(name) or self._ws_symbols.get(name.strip().upper())

    def ws_pair(self, symbol: str) -> PairRules | None:
        """A pair by its WS v2 symbol only: like Kraken's socket, ``XBT/USD`` is not a WS v2 name."""
        return self._ws_symbols.get(symbol.strip())

    def last_price(self, pair: PairRules) -> Decimal:
        """The last trade price relative prices are resolved against."""
        return self.engine.mark(pair)

    def asset_pairs_body(self) -> str:
        """The whole AssetPairs answer as JSON text, serialised once per change of the pairs (it is 1 MB)."""
        if self._asset_pairs_body is None:
            import json

            self._asset_pairs_body = json.dumps({"error": [], "result": self.asset_pairs})
        return self._asset_pairs_body

    def asset_decimals(self, asset: str) -> int:
        info = self.assets.get(asset)
        return int(info["decimals"]) if info else (4 if asset.startswith("Z") else 10)

    # -- control surface (also served under /_sim/...) ------------------------------------------------------

    def pair(self, name: str) -> PairRules:
        """A pair by key, altname, wsname or WS v2 symbol; ``KeyError`` otherwise."""
        found = self.find_pair(name)
        if found is None:
            raise KeyError(f"unknown pair {name!r}")
        return found

    def mark_price(self, pair: str) -> Decimal:
        """The pair's current mark."""
        return self.engine.mark(self.pair(pair))

    def set_mark_price(self, pair: str, price: Decimal | str, qty: Decimal | str | None = None) -> None:
        """A trade at ``price`` (of ``qty``, default the pair's ordermin): resting orders and triggers react."""
        self.engine.set_mark(self.pair(pair), to_decimal(price), to_decimal(qty) if qty is not None else None)

    def set_index_price(self, pair: str, price: Decimal | str | None) -> None:
        """Set the pair's index price (``trigger=index``), or with None let it follow the last trade again."""
        self.engine.set_index(self.pair(pair), to_decimal(price) if price is not None else None)

    def advance_price(self, pair: str | None = None, steps: int = 1) -> dict[str, Decimal]:
        """Take ``steps`` steps along the price path of one pair (or every pair); returns the new marks."""
        chosen = [self.pair(pair)] if pair else list(self.pairs)
        return {p.key: self.engine.step(p, steps) for p in chosen}

    def advance_time(self, seconds: float) -> float:
        """Move simulator time forward and run what became due (tapes, acceptance, expiry, dead man's switch)."""
        now = self.clock.advance(seconds)
        self.tick()
        return now

    def inject_fault(self, path: str, kind: FaultKind | str, count: int = 1, seconds: float = 0.0) -> Fault:
        """Make the next ``count`` calls to ``path`` (``AddOrder``, ``/0/private/AddOrder``, ``add_order``)
        misbehave; ``ValueError`` lists the valid kinds."""
        return self.faults.inject(path, kind, count, seconds)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self.faults.clear()

    def requests(self, method: str | None = None, cl_ord_id: str | None = None) -> list[RequestRecord]:
        """The request log (REST and WS trading), optionally only one method and/or one ``cl_ord_id``."""
        return self.request_log.calls(method, cl_ord_id)

    def balances(self, key: str | None = None) -> dict[str, Decimal]:
        """The account's balances."""
        return dict(self.engine.account(key or self.key).balances)

    def set_balance(self, asset: str, amount: Decimal | str, key: str | None = None) -> None:
        """Set one asset's balance (negative amounts allowed: Kraken shows them after some fee corrections)."""
        self.engine.account(key or self.key).balances[asset] = to_decimal(amount)

    def set_fee_default(self, currency: str, key: str | None = None) -> None:
        """``base`` or ``quote``: where the account's fees go when an order names neither ``fcib`` nor ``fciq``."""
        if currency not in ("base", "quote"):
            raise ValueError(f"unknown fee currency {currency!r}: valid are base, quote")
        self.engine.account(key or self.key).fee_in_base_default = currency == "base"

    def set_hold_untriggered(self, hold: bool) -> None:
        """Whether untriggered stops hold funds (Kraken's behaviour, the default) or only once triggered."""
        self.engine.hold_untriggered = hold
        for account in self.engine.accounts.values():
            for order in list(account.open.values()):
                self.engine._set_hold(order)

    def set_asset_pair(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change fields of one AssetPairs entry (e.g. ``{"pair_decimals": 0}``); clients that refresh see it and
        new orders are checked against it. ``KeyError``/``ValueError`` say what is wrong."""
        pair = self.pair(name)
        entry = dict(self.asset_pairs[pair.key])
        unknown = sorted(set(changes) - set(entry) - {"status", "tick_size", "costmin"})
        if unknown:
            raise ValueError(f"unknown AssetPairs fields {unknown}: valid are {', '.join(sorted(entry))}")
        entry.update(changes)
        PairRules.from_kraken(pair.key, entry)  # refuse what the ledger could not read either
        self.asset_pairs[pair.key] = entry
        self.pairs = registry_for(self.asset_pairs)
        self._index_names()
        self.engine.paths[pair.key].requantize(int(entry["pair_decimals"]))
        return entry

    def jump_nonce(self, seconds: float, key: str | None = None) -> int:
        """Another client on the key used a nonce ``seconds`` ahead: calls are refused until the caller's passes."""
        return self.nonces.jump_ahead(key or self.key, seconds, self.clock.now())

    def play_tape(self, pair: str, source: str | None = None, speed: float | None = 1.0) -> TapePlayer:
        """Play a Kraken trade-history CSV into the pair's market at ``speed`` (None: only ``step_tape``)."""
        rules = self.pair(pair)
        source = source or SHIPPED_TAPES.get(rules.key)
        if source is None:
            raise ValueError(f"no tape given for {rules.wsname} and none is shipped")
        rows = load_tape(source)
        player = TapePlayer(
            rules.key,
            rows,
            lambda price, volume: self.engine.set_mark(self.pair(rules.key), price, volume),
            self.clock.now,
            speed,
        )
        self.tapes[rules.key] = player
        return player

    def step_tape(self, pair: str, rows: int = 1) -> int:
        """Play the next ``rows`` rows of the pair's tape now."""
        return self.tapes[self.pair(pair).key].step(rows)

    def orders(self, key: str | None = None) -> list[SimOrder]:
        """Every order of the account, oldest first."""
        return list(self.engine.account(key or self.key).orders.values())

    def trades(self, key: str | None = None) -> list[SimTrade]:
        """Every trade of the account, oldest first."""
        return list(self.engine.account(key or self.key).trades.values())

    def set_system_status(self, status: str) -> None:
        """``online``, ``maintenance``, ``cancel_only`` or ``post_only`` (served by SystemStatus, gates AddOrder)."""
        if status not in SYSTEM_STATUSES:
            raise ValueError(f"unknown system status {status!r}: valid are {', '.join(SYSTEM_STATUSES)}")
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


__all__ = ["WS_V2_ASSET_NAMES", "KrakenSimulator"]
