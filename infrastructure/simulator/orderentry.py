"""AddOrder parameters -> a validated ``OrderRequest``, rejecting what Kraken rejects with Kraken's strings.

Parameters and their rules are REFERENCE.md 3.2 (Kraken's OpenAPI ``add.yaml``): ``ordertype`` (every Spot type:
market, limit, iceberg, stop-loss, stop-loss-limit, take-profit, take-profit-limit, trailing-stop,
trailing-stop-limit), ``price``/``price2`` (absolute, or relative to the last trade with ``+``/``-``/``#`` and an
optional ``%``), ``trigger`` (last|index), ``oflags`` (post, fcib, fciq, nompp, viqc), ``timeinforce``
(GTC|IOC|GTD) with ``expiretm``, ``starttm``, ``userref`` xor ``cl_ord_id``, ``displayvol``, ``stptype``,
``reduce_only``, ``deadline`` (at most 60 s ahead) and ``validate``. Margin (``leverage``, ``settle-position``,
``close[...]``) is not simulated and is refused naming the field.

Only stateless checks live here (syntax, pair rules, relative prices against the last trade); funds, ``cl_ord_id``
clashes, open-order caps and market gates need the exchange's state and are checked by the matching core.
Where Kraken's exact wording is not captured, the string says so in ``errors``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from execledger.domain.pairs import PairRules
from execledger.domain.values import Side

from . import errors as E
from .clock import parse_rfc3339
from .errors import KrakenError


class SimOrderType(StrEnum):
    """Every Spot ``ordertype`` Kraken accepts (``settle-position`` is margin-only and refused)."""

    MARKET = "market"
    LIMIT = "limit"
    ICEBERG = "iceberg"
    STOP_LOSS = "stop-loss"
    STOP_LOSS_LIMIT = "stop-loss-limit"
    TAKE_PROFIT = "take-profit"
    TAKE_PROFIT_LIMIT = "take-profit-limit"
    TRAILING_STOP = "trailing-stop"
    TRAILING_STOP_LIMIT = "trailing-stop-limit"


T = SimOrderType
TRIGGERED_TYPES = frozenset(
    {T.STOP_LOSS, T.STOP_LOSS_LIMIT, T.TAKE_PROFIT, T.TAKE_PROFIT_LIMIT, T.TRAILING_STOP, T.TRAILING_STOP_LIMIT}
)
LIMIT_AFTER_TRIGGER = frozenset({T.STOP_LOSS_LIMIT, T.TAKE_PROFIT_LIMIT, T.TRAILING_STOP_LIMIT})
TRAILING_TYPES = frozenset({T.TRAILING_STOP, T.TRAILING_STOP_LIMIT})
RESTING_LIMIT_TYPES = frozenset({T.LIMIT, T.ICEBERG})
STOP_TYPES = frozenset({T.STOP_LOSS, T.STOP_LOSS_LIMIT, T.TRAILING_STOP, T.TRAILING_STOP_LIMIT})
OFLAGS = ("post", "fcib", "fciq", "nompp", "viqc")
TIME_IN_FORCE = ("GTC", "IOC", "GTD")
STP_TYPES = ("cancel-newest", "cancel-oldest", "cancel-both")
MAX_DEADLINE_AHEAD_S = 60.0  # REFERENCE.md 3.2: deadline is at most now + 60 s
MIN_EXPIRE_AHEAD_S = 5.0  # expiretm "+<n>" at least 5 s
MAX_EXPIRE_AHEAD_S = 31 * 86400.0  # "up to one month"
INT32 = (-(2**31), 2**31 - 1)
MAX_NUMBER = Decimal(10) ** 15  # no price, volume or offset on Kraken comes near this; past it is garbage
MAX_DECIMALS = 18


@dataclass(frozen=True)
class Offset:
    """A relative price: ``+5``, ``-1.5%``; ``sign`` is +1 or -1, ``percent`` says whether ``amount`` is a %."""

    sign: int
    amount: Decimal
    percent: bool
    text: str

    def apply(self, reference: Decimal) -> Decimal:
        delta = reference * self.amount / 100 if self.percent else self.amount
        return reference + self.sign * delta

    def distance(self, reference: Decimal) -> Decimal:
        """The offset's size at ``reference`` (always positive)."""
        return reference * self.amount / 100 if self.percent else self.amount


@dataclass(frozen=True)
class OrderRequest:
    """One order as the engine holds it. ``price`` is the limit for limit/iceberg, the trigger for the stop and
    take-profit types; ``price2`` the limit of a ``*-limit`` type. Trailing types keep ``trail`` (the distance of
    the stop from the best price seen) and ``trail_limit`` (the limit's offset from the trigger)."""

    pair: PairRules
    side: Side
    ordertype: SimOrderType
    volume: Decimal  # base units; with viqc the quote amount to spend
    price: Decimal | None = None
    price2: Decimal | None = None
    trail: Offset | None = None
    trail_limit: Offset | None = None
    userref: int | None = None
    cl_ord_id: str | None = None
    post_only: bool = False
    trigger: str = "last"
    reduce_only: bool = False
    validate: bool = False
    deadline: float | None = None
    expiretm: float = 0.0
    starttm: float = 0.0
    timeinforce: str = "GTC"
    fee_in_base: bool | None = None  # None: the account's default (quote unless set by /_sim/fees)
    nompp: bool = False
    viqc: bool = False
    displayvol: Decimal | None = None
    stptype: str = "cancel-newest"
    oflags: tuple[str, ...] = field(default=())

    @property
    def limit_price(self) -> Decimal | None:
        """The fixed limit price (None for market-type orders and for trailing-stop-limit, set at trigger)."""
        if self.ordertype in RESTING_LIMIT_TYPES:
            return self.price
        if self.ordertype in (T.STOP_LOSS_LIMIT, T.TAKE_PROFIT_LIMIT):
            return self.price2
        return None

    @property
    def trigger_price(self) -> Decimal | None:
        """The fixed trigger price of a stop/take-profit (None for trailing types: their stop moves)."""
        if self.ordertype in TRIGGERED_TYPES and self.ordertype not in TRAILING_TYPES:
            return self.price
        return None

    @property
    def is_stop(self) -> bool:
        return self.ordertype in STOP_TYPES

    @property
    def fills_at_limit(self) -> bool:
        """Whether the order, once active, is a limit order (rests) rather than a market order."""
        return self.ordertype in RESTING_LIMIT_TYPES or self.ordertype in LIMIT_AFTER_TRIGGER


def is_true(value: Any) -> bool:
    """Kraken booleans arrive as ``true``/``false`` text in forms and as JSON booleans in JSON bodies."""
    return value is True or str(value).strip().lower() == "true"


def _decimal(value: Any, error: str) -> Decimal:
    if isinstance(value, float):
        value = repr(value)  # JSON bodies carry numbers; their shortest repr is what the client wrote
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise KrakenError(error) from None
    if not d.is_finite() or abs(d) >= MAX_NUMBER or decimals_of(d) > MAX_DECIMALS:
        raise KrakenError(error)
    return d


def decimals_of(d: Decimal) -> int:
    exponent = d.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _blank(value: Any) -> bool:
    return value is None or str(value).strip() == ""


def parse_offset(value: Any, error: str, *, signs: str = "+-#") -> Offset:
    """``+5``, ``-2.5%``, ``#1``: a relative price (REFERENCE.md 3.2 "relative prices")."""
    text = str(value).strip()
    if not text or text[0] not in signs:
        raise KrakenError(error)
    percent = text.endswith("%")
    amount = _decimal(text[1:-1] if percent else text[1:], error)
    if amount < 0:
        raise KrakenError(error)
    sign = {"+": 1, "-": -1}.get(text[0], 0)
    return Offset(sign, amount, percent, text)


def _hash_sign(ordertype: SimOrderType, side: Side) -> int:
    # '#' is "direction-dependent" (REFERENCE.md 3.2) and Kraken does not spell the rule out. We read it as the
    # side that makes sense for the type: limits below (buy) / above (sell) the market, stop-losses beyond it on
    # the losing side, take-profits on the winning side.
    buy = side is Side.BUY
    if ordertype in RESTING_LIMIT_TYPES or ordertype in (T.TAKE_PROFIT, T.TAKE_PROFIT_LIMIT):
        return -1 if buy else 1
    return 1 if buy else -1


def _on_pair_grid(pair: PairRules, price: Decimal) -> Decimal:
    quantum = Decimal(1).scaleb(-pair.pair_decimals)
    step = pair.tick_size if pair.tick_size is not None and pair.tick_size > quantum else quantum
    return ((price / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step).quantize(quantum)


def _check_absolute(pair: PairRules, value: Any, argument_error: str) -> Decimal:
    price = _decimal(value, argument_error)
    if price <= 0:
        raise KrakenError(argument_error)
    if decimals_of(price) > pair.pair_decimals:
        raise KrakenError(E.invalid_price_decimals(pair.key, pair.pair_decimals))
    if pair.tick_size is not None and price % pair.tick_size != 0:
        raise KrakenError(E.TICK_SIZE)
    return price


def _price(
    pair: PairRules, value: Any, argument_error: str, ordertype: SimOrderType, side: Side, last: Decimal | None
) -> Decimal:
    """An absolute price, or a relative one resolved against the last trade and put on the pair's grid."""
    if _blank(value):
        raise KrakenError(argument_error)
    text = str(value).strip()
    if text[0] in "+-#" or text.endswith("%"):
        if text[0] not in "+-#":  # "5%" alone: a percentage with no direction
            raise KrakenError(argument_error)
        if last is None:
            raise KrakenError(argument_error)
        offset = parse_offset(text, argument_error)
        if offset.sign == 0:
            offset = Offset(_hash_sign(ordertype, side), offset.amount, offset.percent, offset.text)
        resolved = _on_pair_grid(pair, offset.apply(last))
        if resolved <= 0:
            raise KrakenError(argument_error)
        return resolved
    return _check_absolute(pair, value, argument_error)


def _time(value: Any, now: float, name: str) -> float:
    text = str(value if value is not None else "0").strip() or "0"
    try:
        seconds = now + float(text[1:]) if text.startswith("+") else float(text)
    except ValueError:
        raise KrakenError(E.invalid_arguments(name)) from None
    if not math.isfinite(seconds) or not 0 <= seconds < 1e11:  # epoch seconds before the year 5138
        raise KrakenError(E.invalid_arguments(name))
    return seconds


def _cl_ord_id(text: str) -> str:
    """[D-CLID]: a long UUID (36 chars with dashes), a short UUID (32 hex) or free text of at most 18 ASCII chars."""
    if not text.isascii() or not text.isprintable():
        raise KrakenError(E.invalid_arguments("cl_ord_id"))
    hexdigits = set("0123456789abcdefABCDEF")
    long_uuid = len(text) == 36 and all(
        (c == "-") if i in (8, 13, 18, 23) else (c in hexdigits) for i, c in enumerate(text)
    )
    short_uuid = len(text) == 32 and set(text) <= hexdigits
    if not (long_uuid or short_uuid or len(text) <= 18):
        raise KrakenError(E.invalid_arguments("cl_ord_id"))
    return text


def parse_add_order(
    params: Mapping[str, Any],
    find_pair: Callable[[str], PairRules | None],
    now: float,
    last_price: Callable[[PairRules], Decimal | None] = lambda pair: None,
) -> OrderRequest:
    """Validate AddOrder parameters the way Kraken does, in Kraken's order of checks (pair, type, ordertype,
    volume, prices, ids, flags, times, minimums). Raises ``KrakenError`` with Kraken's string."""
    pair = find_pair(str(params.get("pair") or ""))
    if pair is None:
        raise KrakenError(E.UNKNOWN_PAIR)
    try:
        side = Side(str(params.get("type")))
    except ValueError:
        raise KrakenError(E.invalid_arguments("type")) from None
    try:
        ordertype = SimOrderType(str(params.get("ordertype")))
    except ValueError:
        raise KrakenError(E.invalid_arguments("ordertype")) from None
    if not _blank(params.get("leverage")) and str(params.get("leverage")).lower() != "none":
        raise KrakenError(E.invalid_arguments("leverage"))  # margin is not simulated
    if any(str(k).startswith("close") for k in params):
        raise KrakenError(E.invalid_arguments("close"))  # conditional close is not simulated
    oflags = tuple(f.strip() for f in str(params.get("oflags") or "").split(",") if f.strip())
    if any(f not in OFLAGS for f in oflags) or {"fcib", "fciq"} <= set(oflags):
        raise KrakenError(E.invalid_arguments("oflags"))
    viqc = "viqc" in oflags
    if _blank(params.get("volume")):
        raise KrakenError(E.invalid_arguments("volume"))
    volume = _decimal(params["volume"], E.invalid_arguments("volume"))
    volume_decimals = pair.cost_decimals if viqc else pair.lot_decimals
    if volume <= 0 or decimals_of(volume) > volume_decimals:
        raise KrakenError(E.invalid_arguments("volume"))
    last = last_price(pair)
    price = price2 = None
    trail = trail_limit = None
    if ordertype in TRAILING_TYPES:
        # A trailing stop's price is always "+<offset>[%]": how far the stop trails the best price seen.
        trail = parse_offset(params.get("price") or "", E.INVALID_PRICE_ARGUMENT, signs="+")
        if trail.amount <= 0:
            raise KrakenError(E.INVALID_PRICE_ARGUMENT)
        if ordertype is T.TRAILING_STOP_LIMIT:
            trail_limit = parse_offset(params.get("price2") or "", E.INVALID_PRICE2_ARGUMENT, signs="+-")
    elif ordertype is not T.MARKET:
        price = _price(pair, params.get("price"), E.INVALID_PRICE_ARGUMENT, ordertype, side, last)
    if ordertype in (T.STOP_LOSS_LIMIT, T.TAKE_PROFIT_LIMIT):
        price2 = _price(pair, params.get("price2"), E.INVALID_PRICE2_ARGUMENT, ordertype, side, last)
    userref = cl_ord_id = None
    if not _blank(params.get("userref")):
        try:
            userref = int(str(params["userref"]).strip())
        except ValueError:
            raise KrakenError(E.invalid_arguments("userref")) from None
        if not INT32[0] <= userref <= INT32[1]:
            raise KrakenError(E.invalid_arguments("userref"))
    if not _blank(params.get("cl_ord_id")):
        if userref is not None:
            raise KrakenError(E.invalid_arguments("cl_ord_id"))  # userref and cl_ord_id are mutually exclusive
        cl_ord_id = _cl_ord_id(str(params["cl_ord_id"]))
    post_only = "post" in oflags
    if post_only and ordertype not in RESTING_LIMIT_TYPES:
        raise KrakenError(E.invalid_arguments("oflags"))
    if "nompp" in oflags and ordertype is not T.MARKET:
        raise KrakenError(E.NOMPP_MARKET_ONLY)
    if viqc and (ordertype is not T.MARKET or side is not Side.BUY):
        raise KrakenError(E.invalid_arguments("viqc"))
    displayvol = None
    if ordertype is T.ICEBERG:
        if _blank(params.get("displayvol")):
            raise KrakenError(E.invalid_arguments("displayvol"))
        displayvol = _decimal(params["displayvol"], E.invalid_arguments("displayvol"))
        if displayvol <= 0 or displayvol > volume or displayvol * 15 < volume:
            raise KrakenError(E.invalid_arguments("displayvol"))  # at least 1/15 of the volume
    elif not _blank(params.get("displayvol")):
        raise KrakenError(E.invalid_arguments("displayvol"))
    timeinforce = str(params.get("timeinforce") or "GTC").upper()
    if timeinforce not in TIME_IN_FORCE:
        raise KrakenError(E.invalid_arguments("timeinforce"))
    expiretm = _time(params.get("expiretm"), now, "expiretm")
    if expiretm:
        if not now + MIN_EXPIRE_AHEAD_S <= expiretm <= now + MAX_EXPIRE_AHEAD_S or timeinforce == "IOC":
            raise KrakenError(E.invalid_arguments("expiretm"))
        timeinforce = "GTD"
    elif timeinforce == "GTD":
        raise KrakenError(E.invalid_arguments("expiretm"))  # GTD needs an expiry time
    starttm = _time(params.get("starttm"), now, "starttm")
    if starttm and starttm <= now:
        starttm = 0.0
    stptype = str(params.get("stptype") or "cancel-newest")
    if stptype not in STP_TYPES:
        raise KrakenError(E.invalid_arguments("stptype"))
    base_volume = volume / last if viqc and last else volume
    if base_volume < pair.ordermin:
        raise KrakenError(E.ORDER_MINIMUM)
    cost_price = price2 if price2 is not None else price
    if pair.costmin is not None and cost_price is not None and volume * cost_price < pair.costmin:
        raise KrakenError(E.COST_MINIMUM)
    deadline = None
    if not _blank(params.get("deadline")):
        try:
            deadline = parse_rfc3339(str(params["deadline"]))
        except ValueError:
            raise KrakenError(E.invalid_arguments("deadline")) from None
        if deadline > now + MAX_DEADLINE_AHEAD_S + 1:
            raise KrakenError(E.invalid_arguments("deadline"))
    trigger = str(params.get("trigger") or "last")
    if trigger not in ("last", "index"):
        raise KrakenError(E.invalid_arguments("trigger"))
    fee_in_base = True if "fcib" in oflags else False if "fciq" in oflags else None
    return OrderRequest(
        pair=pair,
        side=side,
        ordertype=ordertype,
        volume=volume,
        price=price,
        price2=price2,
        trail=trail,
        trail_limit=trail_limit,
        userref=userref,
        cl_ord_id=cl_ord_id,
        post_only=post_only,
        trigger=trigger,
        reduce_only=is_true(params.get("reduce_only")),
        validate=is_true(params.get("validate")),
        deadline=deadline,
        expiretm=expiretm,
        starttm=starttm,
        timeinforce=timeinforce,
        fee_in_base=fee_in_base,
        nompp="nompp" in oflags,
        viqc=viqc,
        displayvol=displayvol,
        stptype=stptype,
        oflags=oflags,
    )
