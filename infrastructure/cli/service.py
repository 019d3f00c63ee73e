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
    @click.option(
        "--tier",
        type=click.Choice(["starter", "intermediate", "pro", "none"]),
        default="starter",
        show_default=True,
        help="Kraken verification tier whose limits are enforced (REST and trading counters, open orders per pair, "
        "public calls); none turns them off.",
    )
    @click.option(
        "--tape",
        "tapes",
        multiple=True,
        metavar="PAIR=CSV",
        help="Play a Kraken trade-history CSV (timestamp,price,volume) into a pair; repeatable.",
    )
    @click.option(
        "--speed", default=1.0, show_default=True, type=float, help="Tape seconds played per second of wall time."
    )
    def simulator(
        host: str,
        port: int,
        key: str,
        secret: str,
        seed: int,
        fill_fractions: str,
        tier: str,
        tapes: tuple[str, ...],
        speed: float,
    ) -> None:
        """Run the Kraken Spot simulator (REST, WS v2 authenticated and public, /_sim controls) until interrupted.

        Every Spot pair is listed; Kraken's limits are on at the Starter tier unless --tier says otherwise."""
        import asyncio
        from decimal import Decimal

        from execledger.infrastructure.kraken.auth import InvalidSecret, decode_secret
        from execledger.infrastructure.simulator import KrakenSimulator
        from execledger.infrastructure.simulator.prices import load_tape

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
        if any(not Decimal(0) < f <= Decimal(1) for f in fractions):
            raise click.BadParameter(
                f"{fill_fractions!r}: each fraction must be in (0, 1]", param_hint="--fill-fractions"
            )
        if speed <= 0:
            raise click.BadParameter("the speed must be positive", param_hint="--speed")
        tape_map: dict[str, str] = {}
        for item in tapes:
            pair, sep, path = item.partition("=")
            if not sep or not pair.strip() or not path.strip():
                raise click.BadParameter(f"{item!r} is not PAIR=CSV (e.g. SOL/USD=trades.csv)", param_hint="--tape")
            try:
                load_tape(path.strip())
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--tape") from None
            tape_map[pair.strip()] = path.strip()

        async def serve() -> None:
            stop = asyncio.Event()
            # A process started from a background job inherits SIGINT as *ignored* (seen in CI): the signals are
            # taken from the first moment (early.py) and handed to this loop, and SIGTERM stops it cleanly too.
            with early.signals_to(asyncio.get_running_loop(), stop.set):
                if stop.is_set():
                    return  # signalled while starting: start nothing
                sim = KrakenSimulator(
                    host=host,
                    port=port,
                    key=key,
                    secret=secret,
                    seed=seed,
                    fill_fractions=fractions,
                    tier=None if tier == "none" else tier,
                )
                for pair, path in tape_map.items():
                    if sim.find_pair(pair) is None:
                        raise click.BadParameter(f"unknown pair {pair!r}", param_hint="--tape")
                    sim.play_tape(pair, path, speed)
                async with sim:
                    click.echo(
                        f"Kraken simulator: REST {sim.rest_url}  WS {sim.ws_url}  public WS {sim.public_ws_url}  "
                        f"controls {sim.rest_url}/_sim/  tier {tier}",
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
    @click.option(
        "--paper",
        is_flag=True,
        help="paper trading: the built-in simulator on live public prices (EXECLEDGER_PAPER_*); no order leaves",
    )
    def run(role: str, standby: bool, paper: bool) -> None:
        """Run the service (trading workers, read-model follower, HTTP API) until SIGINT/SIGTERM.

        Without EXECLEDGER_KRAKEN_URL it trades against the built-in simulator (no keys); with --paper that
        simulator fills at live prices from Kraken's public feed."""
        import asyncio

        from execledger.infrastructure.runner import Role, run_service
        from execledger.infrastructure.simulator.embedded import PaperConfigError, check_paper
        from execledger.infrastructure.writerlock import WriterLockHeld

        settings = load()
        if paper:
            settings = settings.model_copy(update={"paper": True})
        # Every check before anything starts: no trading task, writer lock, socket or store exists yet.
        warning = None
        try:
            check_paper(settings)
            check_service(settings, role)
            if role in ROLES_THAT_TRADE and settings.kraken_url and not early.stop_requested():
                warning = asyncio.run(_interruptible(check_online(settings, strict=False)))
        except (ConfigError, PaperConfigError) as exc:
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
            # The first SIGTERM/SIGINT stops gracefully (filled positions get their stop-loss first, at most
            # EXECLEDGER_STOP_PROTECT_S); a second one during that stop ends it at once.
            stop, stop_now = asyncio.Event(), asyncio.Event()

            def on_signal() -> None:
                (stop_now if stop.is_set() else stop).set()

            with early.signals_to(asyncio.get_running_loop(), on_signal):
                if stop.is_set():
                    return  # signalled while starting: start nothing
                await run_service(
                    settings,
                    role=Role(role),
                    stop=stop,
                    stop_now=stop_now,
                    on_ready=ready,
                    standby=standby,
                    freeze_gc=True,
                )

        try:
            asyncio.run(serve())
        except WriterLockHeld as exc:
            fail(Exit.CONFIG, str(exc))
        except (StoreConfigError, StoreUnreachable, PaperConfigError) as exc:
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
