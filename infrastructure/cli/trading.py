"""Operator commands on the trading state: halt and resume."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape

from execledger.domain.trading_state import TradingMode
from execledger.infrastructure.cli.common import load, open_or_exit


def register(main: click.Group) -> None:
    def _mode(mode: TradingMode, reason: str, by: str, cancel_entries: bool = False) -> None:
        console = Console()
        with open_or_exit(load()) as lg:
            changed = lg.engine.set_mode(mode, by=by, why=reason, cancel_entries=cancel_entries)
        console.print(
            f"trading is {mode.value}" + ("" if changed else " (unchanged)") + f": {escape(reason)} (by {escape(by)})"
        )

    @main.command()
    @click.option("--reason", required=True, help="why trading stops (recorded)")
    @click.option("--by", default="cli", show_default=True, help="who halts (recorded)")
    @click.option("--cancel-entries", is_flag=True, help="also cancel every resting entry order")
    @click.option(
        "--reducing", is_flag=True, help="REDUCING instead of HALTED: no new entries, resting ones keep working"
    )
    def halt(reason, by, cancel_entries, reducing):
        """Stop new entries (exits keep being managed)."""
        _mode(TradingMode.REDUCING if reducing else TradingMode.HALTED, reason, by, cancel_entries)

    @main.command()
    @click.option("--reason", default="resumed", show_default=True)
    @click.option("--by", default="cli", show_default=True)
    def resume(reason, by):
        """Accept new entries again."""
        _mode(TradingMode.RUNNING, reason, by)
