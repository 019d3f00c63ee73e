"""``execledger config check``: the configuration as the service would see it, secrets redacted."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape

from execledger.infrastructure.cli.common import load
from execledger.infrastructure.cli.exits import Exit, fail
from execledger.infrastructure.eventstore import (
    StoreConfigError,
    StoreUnreachable,
    open_orders_app,
    parse_postgres_url,
)
from execledger.infrastructure.settings import Settings


def register(main: click.Group) -> None:
    @main.group()
    def config() -> None:
        """Inspect configuration."""

    @config.command("check")
    def config_check() -> None:
        """Validate the configuration and show it with secrets redacted; exit 3 if it cannot be used."""
        console = Console()
        settings = load()
        for name, value in settings.model_dump().items():
            shown = "***" if value is not None and name in {"kraken_key", "kraken_secret", "api_token"} else value
            if name == "database_url" and value is not None:
                try:
                    shown = parse_postgres_url(settings.database_url.get_secret_value()).redacted()
                except StoreConfigError as exc:
                    fail(Exit.CONFIG, f"EXECLEDGER_DATABASE_URL: {exc}")
            console.print(f"EXECLEDGER_{name.upper()} = {escape(str(shown))}")
        app = _open_app(settings)
        app.close()
        console.print(f"[green]ok[/green]: event store reachable ({settings.backend})")


def _open_app(settings: Settings):
    try:
        return open_orders_app(settings)
    except StoreConfigError as exc:
        fail(Exit.CONFIG, f"configuration error: {exc}")
    except StoreUnreachable as exc:
        fail(Exit.CONFIG, str(exc))
    except Exception as exc:  # the driver's own error: say what failed without echoing credentials
        fail(Exit.CONFIG, f"cannot open the event store ({settings.backend}): {type(exc).__name__}: {exc}")
