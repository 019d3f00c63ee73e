"""Kraken Spot: request signing, the REST/WS clients (the adapter) and the shared wire vocabulary."""
