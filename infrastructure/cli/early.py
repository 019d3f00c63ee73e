"""SIGINT and SIGTERM from the very first moment of ``execledger run`` and ``execledger simulator``.

A process started in the background by a script (``execledger run &``) inherits SIGINT as *ignored*: Python then
installs no KeyboardInterrupt handler, and before the event loop's handlers exist (after a second of imports, the
start-up checks and the signed call to Kraken) a SIGINT is simply lost: the service went on trading until a second
signal came. ``take_early`` (called by the ``execledger`` entry point before any heavy import) records both
signals from then on and unblocks them; ``signals_to`` then hands them to an event loop: each one calls the loop's
callback (``stop.set``), and one received earlier calls it at once, so the service stops before it starts anything.
Between two event loops (the start-up checks run in their own) the signals are recorded again, never lost.

Only the service commands take signals this way: every other command keeps Python's default (Ctrl-C interrupts).
Nothing here imports more than the standard library.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

SERVICE_COMMANDS = ("run", "simulator")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
received: list[int] = []  # every stop signal this process received, in order
_taken = False


def _record(signum: int, _frame: Any) -> None:
    received.append(signum)


def service_command(argv: Sequence[str]) -> str | None:
    """The command of an ``execledger`` command line when it is a service command (``run``, ``simulator``)."""
    if not argv or Path(argv[0]).name != "execledger":
        return None
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg == "--config":  # the group's only option that takes a separate value
            args = args[1:]
        elif not arg.startswith("-"):
            return arg if arg in SERVICE_COMMANDS else None
    return None


def take_early(argv: Sequence[str] | None = None) -> bool:
    """For a service command: record SIGINT/SIGTERM from now on (also when inherited as ignored) and unblock them
    (a blocked signal waits until then). Returns whether it did."""
    global _taken
    if service_command(sys.argv if argv is None else argv) is None:
        return False
    for sig in STOP_SIGNALS:
        signal.signal(sig, _record)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _taken = True
    return True


def stop_requested() -> bool:
    return bool(received)


@contextlib.contextmanager
def signals_to(loop: Any, callback: Callable[[], None]) -> Iterator[None]:
    """While inside: SIGINT/SIGTERM call ``callback`` in ``loop`` (a signal received before, at once). On exit the
    signals are recorded again (when taken early) instead of falling back to the default action."""

    def on_signal(signum: int) -> None:
        received.append(signum)
        callback()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        if received:
            callback()
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            if _taken:
                signal.signal(sig, _record)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name
