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
# A pair in limit_only / reduce_only status (AssetPairs ``status``): Kraken's wording is not captured; these follow
# the captured cancel_only / post_only pattern.
LIMIT_ONLY = "EService:Market in limit_only mode"
REDUCE_ONLY = "EService:Market in reduce_only mode"
PERMISSION_DENIED = "EGeneral:Permission denied"
ORDERS_LIMIT = "EOrder:Orders limit exceeded"  # open orders per pair over the tier's cap (REFERENCE.md 5.3)
PUBLIC_RATE_LIMIT = "EGeneral:Too many requests"  # public endpoints (ccxt's exception map; REFERENCE.md 4.1)
UNKNOWN_METHOD = "EGeneral:Unknown method"
UNKNOWN_ASSET = "EQuery:Unknown asset"
# The WS v2 capture says "no_mpp order option is only available when ordertype = market" (REFERENCE.md 4.1);
# REST's wording is not captured, so REST says the same with its own flag name.
NOMPP_MARKET_ONLY = "EGeneral:Invalid arguments:nompp order option is only available when ordertype = market"
# WS v2 strings captured from the venue (REFERENCE.md 4.1 and the kraken_async_rs fixtures).
WS_TOKEN_NOT_FOUND = "Token(s) not found"
# Why an order ended, as order-info ``reason`` and WS ``reason`` say it.
REASON_USER = "User requested"
REASON_REPLACED = "Order replaced"
REASON_POST_ONLY = "Post only order"
# Not captured: Kraken's words for an IOC remainder and a stop that triggers without the funds (REFERENCE.md 9).
REASON_IOC = "Immediate or cancel"
REASON_NO_FUNDS = "Insufficient funds"


def invalid_arguments(field: str) -> str:
    return f"EGeneral:Invalid arguments:{field}"


def amend_refused(detail: str) -> str:
    """AmendOrder's refusals; Kraken's own wording for these is not captured (REFERENCE.md 3.5)."""
    return f"EOrder:Invalid order:{detail}"


def invalid_price_decimals(pair_key: str, decimals: int) -> str:
    return f"EOrder:Invalid price:{pair_key} price can only be specified up to {decimals} decimals."
