"""The one exit-code table of the ``execledger`` command line: scripts may rely on these numbers."""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import NoReturn

import click


class Exit(IntEnum):
    OK = 0
    FAILURE = 1  # unexpected failure (a bug, or something the other codes do not cover)
    INPUT = 2  # bad usage or invalid input
    CONFIG = 3  # configuration, credentials or store unusable; another writer holds the ledger
    DIFFERENCES = 4  # replay found decisions the policies would not make now
    NOT_FOUND = 5  # the order, signal or command asked for does not exist


def fail(code: Exit, message: str) -> NoReturn:
    """Print ``message`` on stderr (one line, no traceback) and exit with ``code``."""
    click.echo(message, err=True)
    sys.exit(int(code))
