"""``execledger config check``: the configuration as the service would see it, secrets redacted, checked exactly
as ``execledger run`` checks it before starting (``preflight.py``); ``--online`` adds a signed read-only call."""

from __future__ import annotations

import asyncio

import click
from rich.console import Console
from rich.markup import escape

from execledger.infrastructure.cli.common import load
from execledger.infrastructure.cli.exits import Exit, fail
from execledger.infrastructure.eventstore import StoreConfigError, parse_postgres_url
from execledger.infrastructure.preflight import ConfigError, check_online, check_service, ledger_location
from execledger.infrastructure.settings import SECRET_SETTINGS, env_name


def register(main: click.Group) -> None:
    @main.group()
    def config() -> None:
        """Inspect configuration."""

    @config.command("check")
    @click.option(
        "--role",
        type=click.Choice(["all", "trading", "projections", "api"]),
        default="all",
        show_default=True,
        help="check what `execledger run --role ROLE` needs",
    )
    @click.option(
        "--online", is_flag=True, help="also make one signed read-only call (Balance) to EXECLEDGER_KRAKEN_URL"
    )
    def config_check(role: str, online: bool) -> None:
        """Validate the configuration as `execledger run` would and show it with secrets redacted; exit 3 (one line
        naming the setting) if the service could not start with it. Creates nothing (except, with --online, the
        nonce file of the key in EXECLEDGER_DATA_DIR)."""
        console = Console()
        settings = load()
        for name, value in settings.model_dump().items():
            shown = value
            if value is not None and name in SECRET_SETTINGS:
                shown = "***"
            if name == "database_url" and value is not None:
                try:
                    shown = parse_postgres_url(settings.postgres_url()).redacted()
                except StoreConfigError as exc:
                    fail(Exit.CONFIG, f"configuration error: {env_name(name)}: {exc}")
            console.print(f"{env_name(name)} = {escape(str(shown))}")
        try:
            check_service(settings, role)
            where = ledger_location(settings)
            warning = None
            if online and settings.kraken_url:
                warning = asyncio.run(check_online(settings, strict=True))
        except ConfigError as exc:
            fail(Exit.CONFIG, f"configuration error: {exc}")
        state = "exists" if where.exists else "none yet: `execledger run` creates it"
        console.print(f"ledger ({settings.backend}): {escape(where.where)} ({state})")
        if warning:
            console.print(f"[yellow]warning[/yellow]: {escape(warning)}")
        if online and not settings.kraken_url:
            console.print("online: no EXECLEDGER_KRAKEN_URL, `run` trades against the built-in simulator")
        elif online and settings.kraken_url:
            console.print(f"[green]online ok[/green]: {escape(settings.kraken_url)} accepted the key (Balance)")
        console.print(f"[green]ok[/green]: `execledger run --role {role}` would start with this configuration")
