"""The ``execledger`` command line (click: subcommands, --help everywhere, exit codes scripts can rely on).

Exit codes: 0 success, 1 unexpected failure, 2 bad usage or invalid input, 3 configuration or store unreachable.
"""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from execledger.infrastructure.eventstore import StoreConfigError, StoreUnreachable, open_orders_app, parse_postgres_url
from execledger.infrastructure.settings import ConfigFileError, Settings, load_settings

EXIT_INPUT = 2
EXIT_CONFIG = 3


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigFileError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except ValidationError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="execledger")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="EXECLEDGER_CONFIG_FILE",
              help="optional KEY=value file with EXECLEDGER_* settings (the environment wins)")
def main(config_file: str | None) -> None:
    """execledger: an event-sourced execution ledger for Kraken Spot."""
    import os

    if config_file:
        os.environ["EXECLEDGER_CONFIG_FILE"] = config_file  # every command's settings read it


@main.command()
def demo() -> None:
    """The main job: a shipped scenario of signals through every path against the in-process simulator (no keys),
    then the execution-report table, an audit timeline, a projection rebuild and a replay check."""
    from execledger.infrastructure.demo import run_demo

    settings = _settings()
    try:
        run_demo(settings)
    except (StoreConfigError, StoreUnreachable) as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)


@main.group()
def config() -> None:
    """Inspect configuration."""


@config.command("check")
def config_check() -> None:
    """Validate the configuration and show it with secrets redacted; exit 3 if it cannot be used."""
    console = Console()
    settings = _settings()
    for name, value in settings.model_dump().items():
        shown = "***" if value is not None and name in {"kraken_key", "kraken_secret", "api_token"} else value
        if name == "database_url" and value is not None:
            try:
                shown = parse_postgres_url(settings.database_url.get_secret_value()).redacted()
            except StoreConfigError as exc:
                console.print(f"[red]EXECLEDGER_DATABASE_URL:[/red] {escape(str(exc))}")
                sys.exit(EXIT_CONFIG)
        console.print(f"EXECLEDGER_{name.upper()} = {escape(str(shown))}")
    app = _open_app(settings)
    app.close()
    console.print(f"[green]ok[/green]: event store reachable ({settings.backend})")


def _open_app(settings: Settings):
    try:
        return open_orders_app(settings)
    except StoreConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except StoreUnreachable as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)
    except Exception as exc:  # the driver's own error: say what failed without echoing credentials
        click.echo(f"cannot open the event store ({settings.backend}): {type(exc).__name__}: {exc}", err=True)
        sys.exit(EXIT_CONFIG)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=8765, show_default=True, type=int, help="TCP port (0 picks a free one).")
@click.option("--key", required=True, help="The API key clients must send.")
@click.option("--secret", required=True, help="The base64 API secret clients sign with (never printed).")
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of the price path and the ids.")
@click.option("--fill-fractions", default="", help="Successive partial fills of a resting limit order, as "
              "fractions of it (e.g. 0.4,0.3); empty: each fills at once.")
def simulator(host: str, port: int, key: str, secret: str, seed: int, fill_fractions: str) -> None:
    """Run the Kraken Spot simulator (REST + WS v2 executions + /_sim controls) until interrupted."""
    import asyncio
    import signal
    from decimal import Decimal

    from execledger.infrastructure.kraken.auth import InvalidSecret, decode_secret
    from execledger.infrastructure.simulator import KrakenSimulator

    try:
        decode_secret(secret)
    except InvalidSecret as exc:
        raise click.BadParameter(str(exc), param_hint="--secret") from None
    try:
        fractions = tuple(Decimal(f) for f in fill_fractions.split(",") if f.strip())
    except ArithmeticError:
        raise click.BadParameter(f"{fill_fractions!r} is not a list of decimals", param_hint="--fill-fractions") from None

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Explicit handlers: a process started from a background job inherits SIGINT as *ignored*, and then
        # Python's default KeyboardInterrupt never comes (seen in CI); SIGTERM stops it cleanly too.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with KrakenSimulator(host=host, port=port, key=key, secret=secret, seed=seed,
                                   fill_fractions=fractions) as sim:
            click.echo(f"Kraken simulator: REST {sim.rest_url}  WS {sim.ws_url}  controls {sim.rest_url}/_sim/", err=True)
            await stop.wait()

    asyncio.run(serve())
    click.echo("simulator stopped", err=True)


@main.command()
@click.option("--role", type=click.Choice(["all", "trading", "projections", "api"]), default="all", show_default=True,
              help="which part of the service this process runs")
@click.option("--standby", is_flag=True, help="trading: wait for the writer lock and take over when its holder dies")
def run(role: str, standby: bool) -> None:
    """Run the service (trading workers, read-model follower, HTTP API) until SIGINT/SIGTERM.

    Without EXECLEDGER_KRAKEN_URL it trades against the built-in simulator (paper trading, no keys)."""
    import asyncio
    import signal

    from execledger.infrastructure.runner import Role, run_service
    from execledger.infrastructure.writerlock import WriterLockHeld

    settings = _settings()

    def ready(running) -> None:
        where = f"simulator {running.simulator.rest_url}" if running.simulator else (settings.kraken_url or "-")
        click.echo(f"execledger running (role {role}): api {running.api_url or '-'}, venue {where}", err=True)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_service(settings, role=Role(role), stop=stop, on_ready=ready, standby=standby)

    try:
        asyncio.run(serve())
    except WriterLockHeld as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)
    except (StoreConfigError, StoreUnreachable) as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_CONFIG)
    click.echo("execledger stopped", err=True)


def _register_operator_commands() -> None:
    from execledger.infrastructure.commands import register

    register(main)


_register_operator_commands()
