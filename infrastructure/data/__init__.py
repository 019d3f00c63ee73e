"""Data shipped with the package: an AssetPairs snapshot (captured from Kraken) and the example signals."""
