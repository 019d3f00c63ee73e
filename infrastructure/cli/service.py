"""Commands that run something: the demo, the service, the standalone simulator."""

from __future__ import annotations

import errno

import click

from execledger.infrastructure.cli import early
from execledger.infrastructure.cli.common import load
from execledger.infrastructure.cli.exits import Exit, fail
from execledger.infrastructure.eventstore import StoreConfigError, StoreUnreachable
from execledger.infrastructure.preflight import ROLES_THAT_TRADE, ConfigError, bind_error, check_online, check_service

BIND_ERRNOS = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)


def register(main: click.Group) -> None:
    @main.command()
    def demo() -> None:
        """The main job: a shipped scenario of signals through every path against the in-process simulator (no keys),
        then the execution-report table, an audit timeline, a projection rebuild and a replay check."""
        from execledger.infrastructure.demo import run_demo

        settings = load()
        try:
            run_demo(settings)
        except (StoreConfigError, StoreUnreachable) as exc:
            fail(Exit.CONFIG, str(exc))

    @main.command()
    @click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
    @click.option("--port", default=8765, show_default=True, type=int, help="TCP port (0 picks a free one).")
    @click.option("--key", required=True, help="The API key clients must send.")
    @click.option("--secret", required=True, help="The base64 API secret clients sign with (never printed).")
    @click.option("--seed", default=1, show_default=True, type=int, help="Seed of the price path and the ids.")
    @click.option(
        "--fill-fractions",
        default="",
        help="Successive partial fills of a resting limit order, as "
        "fractions of it (e.g. 0.4,0.3); empty: each fills at once.",
    )
    def simulator(host: str, port: int, key: str, secret: str, seed: int, fill_fractions: str) -> None:
        """Run the Kraken Spot simulator (REST + WS v2 executions + /_sim controls) until interrupted."""
        import asyncio
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
            raise click.BadParameter(
                f"{fill_fractions!r} is not a list of decimals", param_hint="--fill-fractions"
            ) from None

        async def serve() -> None:
            stop = asyncio.Event()
            # A process started from a background job inherits SIGINT as *ignored* (seen in CI): the signals are
            # taken from the first moment (early.py) and handed to this loop, and SIGTERM stops it cleanly too.
            with early.signals_to(asyncio.get_running_loop(), stop.set):
                if stop.is_set():
                    return  # signalled while starting: start nothing
                async with KrakenSimulator(
                    host=host, port=port, key=key, secret=secret, seed=seed, fill_fractions=fractions
                ) as sim:
                    click.echo(
                        f"Kraken simulator: REST {sim.rest_url}  WS {sim.ws_url}  controls {sim.rest_url}/_sim/",
                        err=True,
                    )
                    await stop.wait()

        if not early.stop_requested():
            asyncio.run(serve())
        click.echo(_stopped("simulator"), err=True)

    @main.command()
    @click.option(
        "--role",
        type=click.Choice(["all", "trading", "projections", "api"]),
        default="all",
        show_default=True,
        help="which part of the service this process runs",
    )
    @click.option(
        "--standby", is_flag=True, help="trading: wait for the writer lock and take over when its holder dies"
    )
    def run(role: str, standby: bool) -> None:
        """Run the service (trading workers, read-model follower, HTTP API) until SIGINT/SIGTERM.

        Without EXECLEDGER_KRAKEN_URL it trades against the built-in simulator (paper trading, no keys)."""
        import asyncio

        from execledger.infrastructure.runner import Role, run_service
        from execledger.infrastructure.writerlock import WriterLockHeld

        settings = load()
        # Every check before anything starts: no trading task, writer lock, socket or store exists yet.
        warning = None
        try:
            check_service(settings, role)
            if role in ROLES_THAT_TRADE and settings.kraken_url and not early.stop_requested():
                warning = asyncio.run(_interruptible(check_online(settings, strict=False)))
        except ConfigError as exc:
            fail(Exit.CONFIG, f"configuration error: {exc}")
        if early.stop_requested():  # SIGINT/SIGTERM during the imports or the checks: start nothing
            click.echo(_stopped("execledger"), err=True)
            return
        if warning:
            click.echo(f"warning: {warning}", err=True)

        def ready(running) -> None:
            where = f"simulator {running.simulator.rest_url}" if running.simulator else (settings.kraken_url or "-")
            click.echo(f"execledger running (role {role}): api {running.api_url or '-'}, venue {where}", err=True)

        async def serve() -> None:
            stop = asyncio.Event()
            with early.signals_to(asyncio.get_running_loop(), stop.set):
                if stop.is_set():
                    return  # signalled while starting: start nothing
                await run_service(settings, role=Role(role), stop=stop, on_ready=ready, standby=standby)

        try:
            asyncio.run(serve())
        except WriterLockHeld as exc:
            fail(Exit.CONFIG, str(exc))
        except (StoreConfigError, StoreUnreachable) as exc:
            fail(Exit.CONFIG, str(exc))
        except OSError as exc:
            if exc.errno not in BIND_ERRNOS:
                raise
            # The port was taken between the check and the bind: still one line, still exit 3.
            fail(Exit.CONFIG, f"configuration error: {bind_error(settings.api_host, settings.api_port, exc)}")
        click.echo(_stopped("execledger"), err=True)


async def _interruptible(check):
    """Run a start-up check until it ends or a stop signal comes (then None: the caller starts nothing)."""
    import asyncio

    task = asyncio.ensure_future(check)
    with early.signals_to(asyncio.get_running_loop(), task.cancel):
        try:
            return await task
        except asyncio.CancelledError:
            if not early.stop_requested():
                raise
            return None


def _stopped(what: str) -> str:
    if not early.received:
        return f"{what} stopped"
    return f"{what} stopped ({early.signal_name(early.received[0])})"
