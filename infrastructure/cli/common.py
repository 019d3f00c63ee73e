"""What every command shares: settings, opening the ledger with a clean error, times given on the command line."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from pydantic import ValidationError

from execledger.infrastructure.bootstrap import Ledger, open_ledger
from execledger.infrastructure.cli.exits import Exit, fail
from execledger.infrastructure.eventstore import StoreConfigError, StoreUnreachable
from execledger.infrastructure.settings import ConfigFileError, Settings, load_settings


def load() -> Settings:
    """The settings of this invocation; a configuration error exits 3 with one line naming it."""
    try:
        return load_settings()
    except (ConfigFileError, ValidationError) as exc:
        fail(Exit.CONFIG, f"configuration error: {exc}")


def open_or_exit(settings: Settings) -> Ledger:
    try:
        return open_ledger(settings)
    except (StoreConfigError, StoreUnreachable) as exc:
        fail(Exit.CONFIG, str(exc))


def timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (e.g. 2026-11-24T18:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
