"""Kraken's WS v2 wire vocabulary shared by the adapter's parser and the simulator (REFERENCE.md 6.2)."""

from __future__ import annotations

from enum import StrEnum

# WS v2 names assets as people do where REST says XBT and XDG (REFERENCE.md 6.2: symbols such as "BTC/USD").
WS_V2_ASSET_NAMES = {"XBT": "BTC", "XDG": "DOGE"}


def ws_asset(altname: str) -> str:
    """The WS v2 name of an asset altname (``XBT`` -> ``BTC``)."""
    return WS_V2_ASSET_NAMES.get(altname, altname)


def ws_symbol_of(wsname: str) -> str:
    """The WS v2 symbol of a REST ``wsname`` (``XBT/USD`` -> ``BTC/USD``, ``XDG/EUR`` -> ``DOGE/EUR``)."""
    return "/".join(ws_asset(part) for part in wsname.split("/"))


class ExecType(StrEnum):
    """WS v2 ``executions`` ``exec_type`` values: what one execution record says happened."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    TRADE = "trade"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    AMENDED = "amended"
    RESTATED = "restated"
    STATUS = "status"
