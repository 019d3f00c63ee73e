"""Pair rules for the embedded default: a captured Kraken AssetPairs snapshot shipped with the package."""

from __future__ import annotations

import json
from importlib import resources

from execledger.domain.pairs import PairRegistry


def load_default_pairs() -> PairRegistry:
    """XBT/USD and ETH/USD as captured from Kraken's AssetPairs (see ../shared/kraken/REFERENCE.md 3.1)."""
    text = resources.files("execledger.infrastructure.data").joinpath("asset_pairs.json").read_text()
    return PairRegistry.from_asset_pairs(json.loads(text))
