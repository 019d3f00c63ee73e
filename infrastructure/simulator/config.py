"""Everything a simulator run can be configured with. The defaults are Kraken's: every Spot pair, the Starter
tier's limits on, funds held by untriggered stops, fees in the quote currency."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .catalog import shipped_asset_pairs
from .limits import OPEN_ORDER_CAPS, PUBLIC_BURST, REST_TIERS, TRADING_TIERS, Tier, tier_named

FROM_TIER: Any = "from-tier"  # a limit left to the ``tier`` field


def default_asset_pairs() -> dict[str, Any]:
    """The shipped AssetPairs ``result``: every Spot pair (see ``catalog``)."""
    return shipped_asset_pairs()


@dataclass
class SimulatorConfig:
    """``KrakenSimulator`` settings. Prices/amounts are strings or Decimals, never floats.

    ``tier`` (``starter``, ``intermediate``, ``pro`` or None) sets the REST counter, the trading counter, the
    open-order cap and the public-endpoint limit together; ``rest_tier``, ``trading_tier``,
    ``max_open_orders_per_pair`` and ``public_burst`` override one of them (None turns it off).
    """

    seed: int = 1
    key: str = "execledger-simulator-key"
    secret: str | None = None  # base64; derived from the seed when not given
    balances: dict[str, Decimal | str] = field(default_factory=lambda: {"ZUSD": "100000", "XXBT": "2", "XETH": "20"})
    start_prices: dict[str, Decimal | str] = field(
        default_factory=lambda: {"XXBTZUSD": "67000.0", "XETHZUSD": "3500.00"}
    )  # other pairs start at a seed price (catalog.seed_prices)
    price_source: str = "walk"  # "walk": seeded random walk; "csv": the tapes in `tapes`, cycled by `advance`
    tapes: dict[str, str] = field(default_factory=dict)  # pair -> CSV path or shipped file name
    tape_speed: float | None = None  # with tapes: play them against the clock at this speed (None: only by step)
    volatility: Decimal = Decimal("0.001")  # random-walk step size, as a fraction of the price
    fill_fractions: tuple[Decimal, ...] = ()  # successive partial fills of a limit order, as fractions of it
    maker_fee_pct: Decimal | None = None  # default: the pair's fees_maker from AssetPairs
    taker_fee_pct: Decimal | None = None  # default: the pair's fees from AssetPairs
    tier: str | None = "starter"
    rest_tier: Tier | None = FROM_TIER
    trading_tier: Tier | None = FROM_TIER
    max_open_orders_per_pair: int | None = FROM_TIER
    public_burst: float | None = FROM_TIER
    nonce_window: int = 0  # Kraken's per-key nonce window, in nonce units (0: strictly increasing)
    hold_untriggered_stops: bool = True  # Kraken holds funds for untriggered stops
    fee_in_base_default: bool = False  # fees in the base asset unless an order says fciq
    clock_start: float | None = None  # epoch seconds to freeze the clock at; None follows wall time
    heartbeat_interval: float = 1.0
    asset_pairs: dict[str, Any] = field(default_factory=default_asset_pairs)

    def __post_init__(self) -> None:
        tier = tier_named(self.tier)
        self.tier = tier
        if self.rest_tier is FROM_TIER:
            self.rest_tier = REST_TIERS[tier] if tier else None
        if self.trading_tier is FROM_TIER:
            self.trading_tier = TRADING_TIERS[tier] if tier else None
        if self.max_open_orders_per_pair is FROM_TIER:
            self.max_open_orders_per_pair = OPEN_ORDER_CAPS[tier] if tier else None
        if self.public_burst is FROM_TIER:
            self.public_burst = PUBLIC_BURST if tier else None
        if self.price_source not in ("walk", "csv"):
            raise ValueError(f"unknown price_source {self.price_source!r}: valid are walk, csv")
        for fraction in self.fill_fractions:
            if not Decimal(0) < Decimal(fraction) <= Decimal(1):
                raise ValueError(f"fill fraction {fraction} is not in (0, 1]")

    def secret_b64(self) -> str:
        if self.secret is not None:
            return self.secret
        return base64.b64encode(random.Random(f"secret-{self.seed}").randbytes(64)).decode()
