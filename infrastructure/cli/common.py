"""What every command shares: settings, opening the ledger with a clean error, times given on the command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from execledger.infrastructure.bootstrap import Ledger, open_ledger
from execledger.infrastructure.cli.exits import Exit, fail
from execledger.infrastructure.eventstore import StoreConfigError, StoreUnreachable
from execledger.infrastructure.preflight import ConfigError, ledger_location
from execledger.infrastructure.preflight import load as load_checked
from execledger.infrastructure.settings import Settings


def load() -> Settings:
    """The settings of this invocation; a configuration error exits 3 with one line naming the setting."""
    try:
        return load_checked()
    except ConfigError as exc:
        fail(Exit.CONFIG, f"configuration error: {exc}")


def open_or_exit(settings: Settings, *, must_exist: bool = True, missing_note: str = "nothing was created") -> Ledger:
    """The ledger, opened. A command that acts on an existing ledger (reports, audit, replay, operator commands)
    refuses a missing one with exit 3 naming where it looked, instead of creating an empty one: a mistyped
    EXECLEDGER_DATA_DIR must not read as "no orders"."""
    try:
        if must_exist:
            where = ledger_location(settings)
            if not where.exists:
                setting = "EXECLEDGER_DATA_DIR" if settings.database_url is None else "EXECLEDGER_DATABASE_URL"
                fail(Exit.CONFIG, f"configuration error: {setting}: no ledger at {where.where} ({missing_note})")
        return open_ledger(settings)
    except ConfigError as exc:
        fail(Exit.CONFIG, f"configuration error: {exc}")
    except (StoreConfigError, StoreUnreachable) as exc:
        fail(Exit.CONFIG, str(exc))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def timestamp(value: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when no offset is given), ``now``, or a time ago: ``-90s``, ``-15m``, ``-1h``,
    ``-2d``, ``-1w``."""
    text = value.strip()
    now = now or datetime.now(UTC)
    if text.lower() == "now":
        return now
    if text.startswith("-") and len(text) > 2 and text[-1].lower() in _UNITS:
        try:
            amount = float(text[1:-1])
        except ValueError:
            amount = -1
        if amount >= 0:
            return now - timedelta(seconds=amount * _UNITS[text[-1].lower()])
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a time: use ISO 8601 (2026-11-24T18:00:00Z), now, or an offset such as -1h, -30m, -2d"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
