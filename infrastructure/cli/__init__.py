"""The ``execledger`` command line (click: subcommands, --help everywhere, exit codes from ``exits.Exit``).

Commands live in one module per concern: ``service`` (demo, run, simulator), ``config``, ``reports`` (report,
audit, state, replay, projections) and ``trading`` (the operator commands that go through the log).
"""

from __future__ import annotations

from execledger.infrastructure.cli import early

early.take_early()  # first: `run` and `simulator` must not lose a SIGINT/SIGTERM sent during the imports below

# These imports follow early.take_early() on purpose (E402): see the line above.
import os  # noqa: E402

import click  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="execledger")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="EXECLEDGER_CONFIG_FILE",
    help="optional KEY=value file with EXECLEDGER_* settings (the environment wins)",
)
def main(config_file: str | None) -> None:
    """execledger: an event-sourced execution ledger for Kraken Spot."""
    if config_file:
        os.environ["EXECLEDGER_CONFIG_FILE"] = config_file  # every command's settings read it
    _configure_logging()


def _configure_logging() -> None:
    """Logging from EXECLEDGER_LOG_*; with unusable settings the defaults (the command then reports the error)."""
    from execledger.infrastructure.logconfig import configure_from_settings, configure_logging
    from execledger.infrastructure.settings import load_settings

    try:
        configure_from_settings(load_settings())
    except Exception:
        configure_logging()


def _register() -> None:
    from execledger.infrastructure.cli import config, reports, service, status, trading

    for module in (service, config, reports, status, trading):
        module.register(main)


_register()
