"""execledger: an event-sourced execution ledger for Kraken Spot.

The design card's folders (``domain/``, ``application/``, ``infrastructure/`` at the repository root) are installed
as ``execledger.domain``, ``execledger.application`` and ``execledger.infrastructure`` (see ``pyproject.toml``), so
nothing but ``execledger`` lands in site-packages.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("execledger")
except PackageNotFoundError:  # pragma: no cover - running from a checkout that was never installed
    __version__ = "0+unknown"
