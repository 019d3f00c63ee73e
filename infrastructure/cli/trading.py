"""Operator commands: halt, resume, cancel, close and resolve.

Each records a command in the ledger's commands log and waits (``--wait``, default 10 s) for the running trading
process to carry it out, then prints what it did and which process did it. When no trading process runs, the
command stays recorded and takes effect when one starts; the CLI says so and exits 0. A refusal (no such order,
not allowed in its state, ...) exits 5 (not found) or 2 (refused); no confirmation within the wait exits 1.

Checked before anything is recorded: the command itself (exit 2 naming the field: ``--reason``, ``--by``, ...);
the ledger, which must exist and be one a trading process has run on (exit 3 naming the data dir or the redacted
URL and schema; nothing is created); and, while no trading process runs, the order or signal it names (exit 5
when it is not in the ledger, exit 2 when the order has already ended).
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from execledger.domain.commands import Command, CommandKind, InvalidCommand, Outcome, Refusal
from execledger.infrastructure.bootstrap import process_name
from execledger.infrastructure.cli.common import load, open_or_exit
from execledger.infrastructure.cli.exits import Exit, fail
from execledger.infrastructure.commandbus import CommandBus, LedgerUnused, TargetNotAllowed, TargetNotFound

# How the command's fields are spelled on this command line.
OPTIONS = {"why": "--reason", "by": "--by", "price": "--price", "quantity": "--quantity", "resolution": "--as"}


def _invalid(exc: InvalidCommand) -> str:
    return "invalid command: " + "; ".join(
        f"{OPTIONS.get(e.field, e.field)}: {e.message} [{e.rule}]" for e in exc.errors
    )


def _issue(kind: CommandKind, payload: dict[str, Any], *, by: str, why: str, wait: float) -> None:
    settings = load()
    try:  # validated before the store is touched: bad input is exit 2 whatever the ledger
        command = Command.issue(kind=kind, payload=payload, by=by, why=why, origin=process_name("cli"))
    except InvalidCommand as exc:
        fail(Exit.INPUT, _invalid(exc))
    with open_or_exit(settings, missing_note="nothing was created or recorded") as lg:
        bus = CommandBus(lg, role="cli")
        try:
            bus.record(command)
        except LedgerUnused as exc:
            fail(Exit.CONFIG, f"configuration error: {exc}")
        except TargetNotFound as exc:
            fail(Exit.NOT_FOUND, f"{kind.value} refused: {exc}")
        except TargetNotAllowed as exc:
            fail(Exit.INPUT, f"{kind.value} refused: {exc}")
        trading = bus.trading_process()
        if trading is None:
            click.echo(
                f"{kind.value} recorded (command {command.id}); no trading process is running: it takes effect when "
                f"one starts"
            )
            return
        receipt = asyncio.run(bus.receipt(command.id, wait))
    if receipt is None:
        fail(
            Exit.FAILURE,
            f"{kind.value} recorded (command {command.id}) but the trading process ({trading}) did not confirm it "
            f"within {wait:g}s; it is carried out when the process reads the log",
        )
    detail = {k: v for k, v in receipt.detail.items() if k not in ("by", "why", "refusal", "message")}
    shown = ", ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, "", [], {}))
    if receipt.outcome is Outcome.REFUSED:
        code = Exit.NOT_FOUND if receipt.refusal is Refusal.NOT_FOUND else Exit.INPUT
        fail(code, f"{kind.value} refused by {receipt.process}: {receipt.detail.get('message')}")
    click.echo(f"{kind.value} {receipt.outcome.value} by {receipt.process}" + (f": {shown}" if shown else ""))


def _wait_option(f):
    return click.option(
        "--wait",
        default=10.0,
        show_default=True,
        type=click.FloatRange(min=0),
        help="seconds to wait for the trading process to confirm",
    )(f)


def register(main: click.Group) -> None:
    @main.command()
    @click.option("--reason", required=True, help="why trading stops (recorded)")
    @click.option("--by", default="cli", show_default=True, help="who halts (recorded)")
    @click.option("--cancel-entries", is_flag=True, help="also cancel every resting entry order")
    @click.option(
        "--reducing", is_flag=True, help="REDUCING instead of HALTED: no new entries, resting ones keep working"
    )
    @_wait_option
    def halt(reason: str, by: str, cancel_entries: bool, reducing: bool, wait: float) -> None:
        """Stop new entries (exits keep being managed)."""
        _issue(CommandKind.HALT, {"reducing": reducing, "cancel_entries": cancel_entries}, by=by, why=reason, wait=wait)

    @main.command()
    @click.option("--reason", default="resumed", show_default=True)
    @click.option("--by", default="cli", show_default=True)
    @_wait_option
    def resume(reason: str, by: str, wait: float) -> None:
        """Accept new entries again."""
        _issue(CommandKind.RESUME, {}, by=by, why=reason, wait=wait)

    @main.command()
    @click.argument("order")
    @click.option("--reason", required=True, help="why (recorded)")
    @click.option("--by", default="cli", show_default=True)
    @_wait_option
    def cancel(order: str, reason: str, by: str, wait: float) -> None:
        """Cancel one working order (by order id, Kraken txid or cl_ord_id). Protective legs of an open position
        are refused: close the position instead."""
        _issue(CommandKind.CANCEL_ORDER, {"order": order}, by=by, why=reason, wait=wait)

    @main.command()
    @click.argument("signal")
    @click.option("--reason", required=True, help="why (recorded)")
    @click.option("--by", default="cli", show_default=True)
    @_wait_option
    def close(signal: str, reason: str, by: str, wait: float) -> None:
        """Close a signal's position: cancel its entry and legs, then exit what is held at market.

        SIGNAL is a signal id, or any id of one of its orders (order id, Kraken txid or cl_ord_id: the entry's or a
        leg's), which closes that order's signal; a signal id takes precedence over an order id spelled the same."""
        _issue(CommandKind.CLOSE_POSITION, {"signal_id": signal}, by=by, why=reason, wait=wait)

    @main.command()
    @click.argument("order")
    @click.option("--as", "resolution", type=click.Choice(["canceled", "filled"]), required=True)
    @click.option("--price", help="filled: the price it filled at (default: its limit or trigger price)")
    @click.option("--quantity", help="filled: how much (default: all that is left)")
    @click.option("--reason", required=True, help="why (recorded)")
    @click.option("--by", default="cli", show_default=True)
    @_wait_option
    def resolve(
        order: str, resolution: str, price: str | None, quantity: str | None, reason: str, by: str, wait: float
    ) -> None:
        """Resolve an order the venue has lost: mark it canceled or filled by hand (who and why are recorded)."""
        payload: dict[str, Any] = {"order": order, "resolution": resolution}
        for name, value in (("price", price), ("quantity", quantity)):
            if value is not None:  # as typed: plain decimal text, checked with the command (exit 2 naming it)
                payload[name] = value.strip()
        _issue(CommandKind.RESOLVE_ORDER, payload, by=by, why=reason, wait=wait)
