"""AddOrder parameters -> a validated ``OrderRequest``, rejecting what Kraken rejects with Kraken's strings.

Only stateless checks live here (syntax, pair rules); funds, ``cl_ord_id`` clashes and market gates need the
exchange's state and are checked by the matching core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from execledger.domain.pairs import PairRegistry, PairRules
from execledger.domain.values import OrderType, Side

from . import errors as E
from .clock import parse_rfc3339
from .errors import KrakenError

TRIGGERED_TYPES = frozenset(
    {OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT}
)
LIMIT_AFTER_TRIGGER = frozenset({OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT})


@dataclass(frozen=True)
class OrderRequest:
    """One order as the engine will hold it; ``price`` is the limit price for limits, the trigger otherwise."""

    pair: PairRules
    side: Side
    ordertype: OrderType
    volume: Decimal
    price: Decimal | None = None
    price2: Decimal | None = None
    userref: int | None = None
    cl_ord_id: str | None = None
    post_only: bool = False
    trigger: str = "last"
    reduce_only: bool = False
    validate: bool = False
    deadline: float | None = None
    expiretm: float = 0.0

    @property
    def limit_price(self) -> Decimal | None:
        if self.ordertype is OrderType.LIMIT:
            return self.price
        if self.ordertype in LIMIT_AFTER_TRIGGER:
            return self.price2
        return None

    @property
    def trigger_price(self) -> Decimal | None:
        return self.price if self.ordertype in TRIGGERED_TYPES else None


def is_true(value: Any) -> bool:
    """Kraken booleans arrive as ``true``/``false`` text in forms and as JSON booleans in JSON bodies."""
    return value is True or str(value).strip().lower() == "true"


def _decimal(value: Any, error: str) -> Decimal:
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise KrakenError(error) from None
    if not d.is_finite():
        raise KrakenError(error)
    return d


def _decimals_of(d: Decimal) -> int:
    exponent = d.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _check_price(pair: PairRules, value: Any, argument_error: str) -> Decimal:
    if value is None or str(value).strip() == "" or str(value).strip()[0] in "+-#" or str(value).endswith("%"):
        # Relative prices (+, -, #, %) are not simulated; say so the way Kraken rejects a bad price argument.
        raise KrakenError(argument_error)
    price = _decimal(value, argument_error)
    if price <= 0:
        raise KrakenError(argument_error)
    if _decimals_of(price) > pair.pair_decimals:
        raise KrakenError(E.invalid_price_decimals(pair.key, pair.pair_decimals))
    if pair.tick_size is not None and price % pair.tick_size != 0:
        raise KrakenError(E.TICK_SIZE)
    return price


def _expiretm(value: Any, now: float) -> float:
    text = str(value or "0").strip()
    try:
        if text.startswith("+"):
            return now + float(text[1:])
        return float(text)
    except ValueError:
        raise KrakenError(E.invalid_arguments("expiretm")) from None


def parse_add_order(params: Mapping[str, Any], pairs: PairRegistry, now: float) -> OrderRequest:
    """Validate AddOrder parameters the way Kraken does, in Kraken's order of checks."""
    pair = pairs.find(str(params.get("pair") or ""))
    if pair is None:
        raise KrakenError(E.UNKNOWN_PAIR)
    try:
        side = Side(str(params.get("type")))
    except ValueError:
        raise KrakenError(E.invalid_arguments("type")) from None
    try:
        ordertype = OrderType(str(params.get("ordertype")))
    except ValueError:
        raise KrakenError(E.invalid_arguments("ordertype")) from None
    if params.get("volume") in (None, ""):
        raise KrakenError(E.invalid_arguments("volume"))
    volume = _decimal(params["volume"], E.invalid_arguments("volume"))
    if volume <= 0 or _decimals_of(volume) > pair.lot_decimals:
        raise KrakenError(E.invalid_arguments("volume"))
    price = price2 = None
    if ordertype is not OrderType.MARKET:
        price = _check_price(pair, params.get("price"), E.INVALID_PRICE_ARGUMENT)
    if ordertype in LIMIT_AFTER_TRIGGER:
        price2 = _check_price(pair, params.get("price2"), E.INVALID_PRICE2_ARGUMENT)
    userref = cl_ord_id = None
    if params.get("userref") not in (None, ""):
        try:
            userref = int(str(params["userref"]))
        except ValueError:
            raise KrakenError(E.invalid_arguments("userref")) from None
    if params.get("cl_ord_id") not in (None, ""):
        cl_ord_id = str(params["cl_ord_id"])
        if userref is not None:
            # Kraken documents userref and cl_ord_id as mutually exclusive.
            raise KrakenError(E.invalid_arguments("cl_ord_id"))
        if len(cl_ord_id) > 36 or not cl_ord_id.isascii():
            raise KrakenError(E.invalid_arguments("cl_ord_id"))
    oflags = {f.strip() for f in str(params.get("oflags") or "").split(",") if f.strip()}
    if not oflags <= {"post", "fcib", "fciq", "nompp", "viqc"}:
        raise KrakenError(E.invalid_arguments("oflags"))
    post_only = "post" in oflags
    if post_only and ordertype is not OrderType.LIMIT:
        raise KrakenError(E.invalid_arguments("oflags"))
    if volume < pair.ordermin:
        raise KrakenError(E.ORDER_MINIMUM)
    cost_price = price2 if ordertype in LIMIT_AFTER_TRIGGER else price
    if pair.costmin is not None and cost_price is not None and volume * cost_price < pair.costmin:
        raise KrakenError(E.COST_MINIMUM)
    deadline = None
    if params.get("deadline") not in (None, ""):
        try:
            deadline = parse_rfc3339(str(params["deadline"]))
        except ValueError:
            raise KrakenError(E.invalid_arguments("deadline")) from None
    trigger = str(params.get("trigger") or "last")
    if trigger not in ("last", "index"):
        raise KrakenError(E.invalid_arguments("trigger"))
    return OrderRequest(
        pair=pair,
        side=side,
        ordertype=ordertype,
        volume=volume,
        price=price,
        price2=price2,
        userref=userref,
        cl_ord_id=cl_ord_id,
        post_only=post_only,
        trigger=trigger,
        reduce_only=is_true(params.get("reduce_only")),
        validate=is_true(params.get("validate")),
        deadline=deadline,
        expiretm=_expiretm(params.get("expiretm"), now),
    )
