"""The simulator ``execledger run`` starts when no venue is configured, or for paper trading (``--paper``).

Settings (``EXECLEDGER_*``): ``SIMULATOR_TIER`` (starter, intermediate, pro, none: the limits it enforces; the
adapter is told to model the same tier, so it waits for capacity instead of being refused),
``SIMULATOR_SEED``, ``SIMULATOR_FILL_FRACTIONS`` (e.g. ``0.4,0.3``). Paper trading (``PAPER=true``):
``PAPER_FEED_URL`` (Kraken's public WS v2), ``PAPER_REST_URL`` (REST Ticker fallback), ``PAPER_BALANCES`` (the
wallet, ``ZUSD=10000,SOL=5``), ``PAPER_PAIRS`` (followed from the start; others from their first order).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from execledger.infrastructure.kraken.wire import ws_symbol_of

from .catalog import shipped_registry
from .feed import LivePriceFeed
from .server import KrakenSimulator

if TYPE_CHECKING:
    from execledger.infrastructure.settings import Settings


class PaperConfigError(ValueError):
    """The paper-trading configuration cannot be used (the message names the setting)."""


def fill_fractions(text: str) -> tuple[Decimal, ...]:
    return tuple(Decimal(p.strip()) for p in text.split(",") if p.strip())


def wallet(text: str) -> dict[str, str]:
    pairs = (p.strip().partition("=") for p in text.split(",") if p.strip())
    return {asset.strip(): amount.strip() for asset, _, amount in pairs}


def check_paper(settings: Settings) -> None:
    """Refuse a paper configuration that cannot work, naming the setting (before anything starts)."""
    if not settings.paper:
        return
    if settings.kraken_url:
        raise PaperConfigError(
            "EXECLEDGER_PAPER trades against the built-in simulator: unset EXECLEDGER_KRAKEN_URL "
            "(paper orders never reach a venue)"
        )
    registry = shipped_registry()
    symbols = {ws_symbol_of(p.wsname) for p in registry}
    names = [p.strip() for p in settings.paper_pairs.split(",") if p.strip()]
    unknown = [n for n in names if registry.find(n) is None and n.upper() not in symbols]
    if unknown:
        raise PaperConfigError(f"EXECLEDGER_PAPER_PAIRS: unknown pairs {', '.join(unknown)}")


def build_simulator(settings: Settings) -> KrakenSimulator:
    """The simulator the settings describe (not started)."""
    check_paper(settings)
    fields: dict = {
        "seed": settings.simulator_seed,
        "fill_fractions": fill_fractions(settings.simulator_fill_fractions),
        "tier": None if settings.simulator_tier == "none" else settings.simulator_tier,
    }
    if settings.paper:
        fields["balances"] = wallet(settings.paper_balances)
    sim = KrakenSimulator(**fields)
    if settings.paper:
        names = [p.strip() for p in settings.paper_pairs.split(",") if p.strip()]
        unknown = [n for n in names if sim.find_pair(n) is None]
        if unknown:
            raise PaperConfigError(f"EXECLEDGER_PAPER_PAIRS: unknown pairs {', '.join(unknown)}")
        sim.price_feed = LivePriceFeed(sim, settings.paper_feed_url, settings.paper_rest_url, names)
    return sim


async def start_embedded(settings: Settings) -> tuple[KrakenSimulator, Settings, str | None]:
    """Start the embedded simulator; returns it, the settings pointing at it, and the tier the adapter must
    model (None: no limits)."""
    sim = await build_simulator(settings).start()
    pointed = settings.with_exchange(url=sim.rest_url, ws_url=sim.ws_url, key=sim.key, secret=sim.secret)
    return sim, pointed, sim.config.tier
