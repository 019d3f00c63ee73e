"""Kraken's error strings (REFERENCE.md section 4.1), raised inside the simulator and put in ``error: [...]``."""

from __future__ import annotations


class KrakenError(Exception):
    """One Kraken error string, e.g. ``EOrder:Insufficient funds``."""

    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


INVALID_KEY = "EAPI:Invalid key"
INVALID_SIGNATURE = "EAPI:Invalid signature"
INVALID_NONCE = "EAPI:Invalid nonce"
API_RATE_LIMIT = "EAPI:Rate limit exceeded"
ORDER_RATE_LIMIT = "EOrder:Rate limit exceeded"
SERVICE_UNAVAILABLE = "EService:Unavailable"
SERVICE_BUSY = "EService:Busy"
DEADLINE_ELAPSED = "EService:Deadline elapsed"
UNKNOWN_PAIR = "EQuery:Unknown asset pair"
UNKNOWN_ORDER = "EOrder:Unknown order"
INVALID_ORDER = "EOrder:Invalid order"
INSUFFICIENT_FUNDS = "EOrder:Insufficient funds"
ORDER_MINIMUM = "EOrder:Order minimum not met"
COST_MINIMUM = "EOrder:Cost minimum not met"
TICK_SIZE = "EOrder:Tick size check failed"
INVALID_PRICE_ARGUMENT = "EOrder:Invalid price:Invalid price argument"
INVALID_PRICE2_ARGUMENT = "EOrder:Invalid price:Invalid secondary price argument"
# Kraken's exact wording for a second open order with the same cl_ord_id is not captured anywhere we can cite
# (REFERENCE.md section 9, open questions); this is our best stand-in and the one place to change it.
DUPLICATE_CL_ORD_ID = "EOrder:Duplicate cl_ord_id"
CANCEL_ONLY = "EService:Market in cancel_only mode"
POST_ONLY = "EService:Market in post_only mode"
PERMISSION_DENIED = "EGeneral:Permission denied"


def invalid_arguments(field: str) -> str:
    return f"EGeneral:Invalid arguments:{field}"


def invalid_price_decimals(pair_key: str, decimals: int) -> str:
    return f"EOrder:Invalid price:{pair_key} price can only be specified up to {decimals} decimals."
