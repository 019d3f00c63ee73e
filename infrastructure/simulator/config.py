"""Everything a simulator run can be configured with; the defaults make a quiet, generous demo exchange."""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any

from .limits import Tier


def default_asset_pairs() -> dict[str, Any]:
    """The captured AssetPairs result shipped in ``infrastructure/data`` (XXBTZUSD, XETHZUSD)."""
    text = resources.files("execledger.infrastructure.data").joinpath("asset_pairs.json").read_text()
    payload = json.loads(text)
    return payload.get("result", payload)


@dataclass
class SimulatorConfig:
    """``KrakenSimulator`` settings. Prices/amounts are strings or Decimals, never floats."""

    seed: int = 1
    key: str = "execledger-simulator-key"
    secret: str | None = None  # base64; derived from the seed when not given
    balances: dict[str, Decimal | str] = field(default_factory=lambda: {"ZUSD": "100000", "XXBT": "2", "XETH": "20"})
    start_prices: dict[str, Decimal | str] = field(
        default_factory=lambda: {"XXBTZUSD": "67000.0", "XETHZUSD": "3500.00"}
    )
    price_source: str = "walk"  # "walk": seeded random walk; "csv": the trade tapes in `tapes`
    tapes: dict[str, str] = field(default_factory=dict)  # pair key -> CSV path or shipped file name
    volatility: Decimal = Decimal("0.001")  # random-walk step size, as a fraction of the price
    fill_fractions: tuple[Decimal, ...] = ()  # successive partial fills of a limit order, as fractions of it
    maker_fee_pct: Decimal | None = None  # default: the pair's fees_maker from AssetPairs
    taker_fee_pct: Decimal | None = None  # default: the pair's fees from AssetPairs
    rest_tier: Tier | None = None  # None: no REST call counter
    trading_tier: Tier | None = None  # None: no per-pair trading counter
    clock_start: float | None = None  # epoch seconds to freeze the clock at; None follows wall time
    heartbeat_interval: float = 1.0
    asset_pairs: dict[str, Any] = field(default_factory=default_asset_pairs)

    def secret_b64(self) -> str:
        if self.secret is not None:
            return self.secret
        return base64.b64encode(random.Random(f"secret-{self.seed}").randbytes(64)).decode()
