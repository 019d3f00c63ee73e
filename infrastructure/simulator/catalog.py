"""The venue's catalogue: every Spot pair Kraken lists, the assets they trade, their WS v2 names and seed prices.

Sources (see ``infrastructure/data/README.md``):
- ``asset_pairs.json`` is a whole ``GET /0/public/AssetPairs`` answer (1,434 pairs, captured January 2026 and
  committed to ``imranpollob/coins`` @ 06201d3ac0aafd57a21fa94393653c8f3e0a63c1), one pair per line, no field
  removed: ccxt reads ``fees``/``fees_maker``, the ledger ``pair_decimals``/``lot_decimals``/``ordermin``/
  ``costmin``/``tick_size``/``status``.
- No whole ``Assets`` answer could be found, so ``Assets`` is *derived* here from the pairs: each asset id with the
  altname its pairs' ``wsname`` spells, and Kraken's captured ``decimals``/``display_decimals`` where a capture
  exists (``CAPTURED_ASSETS``), else 10/5 for a crypto asset and 4/2 for fiat (the captured pattern: 838 of the
  849 assets listed in 2026 are crypto ids, third-party capture in ``Bytex.Adapters.Tests``).
- WS v2 names: WS v2 says ``BTC``/``DOGE`` where REST's ``wsname`` says ``XBT``/``XDG`` (REFERENCE.md 6.1: "v2 uses
  BTC/USD symbols"; the same capture records ``XBT/USD`` and ``XDG/USD`` being refused on the public socket).
- Seed prices are **not market data**: Kraken sets ``ordermin`` near a few dollars' worth of the base asset, so
  ``SEED_ORDER_VALUE_USD / ordermin`` puts every pair within a factor of about three of its real price (XBT
  100,000, SOL 250, XDG 0.38 USD from the January 2026 snapshot) and keeps ``ordermin * price`` above ``costmin``.
  Fiat and stablecoins use ``FIAT_USD``. Set real prices with ``/_sim/price``, a tape, or paper trading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from typing import Any

from execledger.domain.pairs import PairRegistry

# Assets whose Assets entry was captured (decimals, display_decimals); sources in infrastructure/data/README.md.
CAPTURED_ASSETS: dict[str, tuple[int, int]] = {
    "XXBT": (10, 5),
    "XETH": (10, 5),
    "XXDG": (8, 2),
    "ZUSD": (4, 2),
    "ZEUR": (4, 2),
    "ZGBP": (4, 2),
    "SOL": (10, 5),
    "ADA": (8, 6),
    "BCH": (10, 5),
    "1INCH": (10, 5),
    "0G": (6, 4),
}
FIAT = frozenset({"ZUSD", "ZEUR", "ZGBP", "ZCAD", "ZAUD", "ZJPY", "CHF"})
# Approximate USD value of fiat and stablecoins, used only to seed cross prices (not market data).
FIAT_USD: dict[str, Decimal] = {
    "USD": Decimal(1),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "CAD": Decimal("0.73"),
    "AUD": Decimal("0.66"),
    "JPY": Decimal("0.0067"),
    "CHF": Decimal("1.13"),
    "EURC": Decimal("1.08"),
    "EUROP": Decimal("1.08"),
}
STABLE_USD = frozenset(
    {"USDT", "USDC", "DAI", "PYUSD", "USD1", "AUSD", "USDD", "RLUSD", "USDQ", "USDR", "USDG", "TUSD"}
)
SEED_ORDER_VALUE_USD = Decimal(5)


def _load(name: str) -> dict[str, Any]:
    text = resources.files("execledger.infrastructure.data").joinpath(name).read_text()
    payload = json.loads(text)
    return payload.get("result", payload)


@cache
def _shipped() -> dict[str, Any]:
    return _load("asset_pairs.json")


def shipped_asset_pairs() -> dict[str, Any]:
    """The shipped AssetPairs ``result`` (key -> entry): a new dict whose entries are shared and must be replaced,
    never changed in place (``KrakenSimulator.set_asset_pair`` does so)."""
    return dict(_shipped())


@cache
def shipped_registry() -> PairRegistry:
    """The ledger's view of the shipped pairs, built once (1,434 ``PairRules``)."""
    return PairRegistry.from_asset_pairs(_shipped())


def registry_for(asset_pairs: Mapping[str, Mapping[str, Any]]) -> PairRegistry:
    """A ``PairRegistry`` of ``asset_pairs``: the cached one while they are the shipped entries, unchanged."""
    shipped = _shipped()
    if len(asset_pairs) == len(shipped) and all(shipped.get(k) is v for k, v in asset_pairs.items()):
        return shipped_registry()
    return PairRegistry.from_asset_pairs(asset_pairs)


def asset_altnames(asset_pairs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Asset id -> altname, read off each pair's ``wsname`` (``XBT/USD`` names XXBT ``XBT`` and ZUSD ``USD``)."""
    names: dict[str, str] = {}
    for info in asset_pairs.values():
        parts = str(info.get("wsname") or "").split("/")
        if len(parts) == 2:
            names.setdefault(str(info["base"]), parts[0])
            names.setdefault(str(info["quote"]), parts[1])
    return names


def derive_assets(asset_pairs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``Assets`` entries for every asset the pairs trade (see the module docstring for what is captured)."""
    assets: dict[str, dict[str, Any]] = {}
    for asset, altname in sorted(asset_altnames(asset_pairs).items()):
        fiat = asset in FIAT
        decimals, display = CAPTURED_ASSETS.get(asset, (2, 0) if asset == "ZJPY" else (4, 2) if fiat else (10, 5))
        assets[asset] = {
            "aclass": "currency",
            "altname": altname,
            "decimals": decimals,
            "display_decimals": display,
            "status": "enabled",
        }
    return assets


def _usd_value(altname: str) -> Decimal | None:
    if altname in FIAT_USD:
        return FIAT_USD[altname]
    if altname in STABLE_USD:
        return Decimal(1)
    return None


def seed_prices(asset_pairs: Mapping[str, Mapping[str, Any]]) -> dict[str, Decimal]:
    """A starting mark for every pair, on its tick grid (see the module docstring: an estimate, not market data)."""
    names = asset_altnames(asset_pairs)
    usd: dict[str, Decimal] = {}
    for info in asset_pairs.values():
        base = str(info["base"])
        known = _usd_value(names.get(base, base))
        if known is not None:
            usd[base] = known
            continue
        ordermin = Decimal(str(info.get("ordermin") or "0"))
        if ordermin > 0 and (base not in usd or str(info["quote"]) == "ZUSD"):
            usd[base] = SEED_ORDER_VALUE_USD / ordermin
    prices: dict[str, Decimal] = {}
    for key, info in asset_pairs.items():
        base, quote = str(info["base"]), str(info["quote"])
        quote_usd = usd.get(quote) or _usd_value(names.get(quote, quote)) or Decimal(1)
        raw = usd.get(base, Decimal(1)) / quote_usd
        prices[key] = on_grid(raw, info)
    return prices


def on_grid(price: Decimal, info: Mapping[str, Any]) -> Decimal:
    """``price`` rounded to the pair's tick (at least one tick), with ``pair_decimals`` decimals."""
    decimals = int(info.get("pair_decimals", 8))
    tick = Decimal(str(info.get("tick_size") or Decimal(1).scaleb(-decimals)))
    units = max((price / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP), Decimal(1))
    return (units * tick).quantize(Decimal(1).scaleb(-decimals))
