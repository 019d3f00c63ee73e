"""Adapters and entry points: event store configuration, Kraken client and simulator, read models, API, CLI."""
