"""The approved trade signal (validated at the boundary with pydantic) and its translation into an entry plan."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictFloat,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from execledger.domain.errors import FieldError, SignalRejected
from execledger.domain.pairs import PairRegistry, PairRules, PriceKind
from execledger.domain.values import OrderType, Side, plain

SIGNAL_ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
SignalId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=SIGNAL_ID_PATTERN)
]
# Tags are free text without control characters: a NUL cannot be stored in a PostgreSQL text column, and a read
# model that cannot store a row would stop following the log.
_TEXT = r"^[^\x00-\x1f\x7f]*$"

# Quantities and prices travel as decimal strings in plain notation, as Kraken's REST API takes and returns them
# (REFERENCE.md 2: "prices/volumes/costs are strings"). A JSON number is binary floating point (0.1 is not 0.1), a
# bool is not a quantity, and exponents or underscores ("1E+20", "0_0.0_1") are forms nobody means. Kraken
# publishes no maximum; the bounds keep every value exact through rounding in Decimal's default 28-digit context:
# 12 integer digits are beyond any listed market (10^12 base units or quote per unit), and 18 fraction digits are
# beyond the finest grid AssetPairs gives (lot_decimals 8, pair_decimals up to 10); rounding removes the rest.
MAX_INTEGER_DIGITS = 12
MAX_FRACTION_DIGITS = 18
DECIMAL_PATTERN = rf"^[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?$"
_PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def _decimal_text(value: Any) -> Decimal:
    """A decimal string in plain notation (or a finite ``Decimal`` from a Python caller) within the bounds."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise PydanticCustomError("decimal_finite", "must be a finite decimal")
        number = value
    elif isinstance(value, str):
        if not _PLAIN_DECIMAL.fullmatch(value):
            raise PydanticCustomError(
                "decimal_parsing", "must be a decimal in plain notation, digits with an optional fraction (e.g. '0.01')"
            )
        number = Decimal(value)
    else:
        raise PydanticCustomError(
            "decimal_string_required",
            "must be a string such as '0.01', not a JSON {kind} (decimals are sent as text, never as floats)",
            {"kind": "boolean" if isinstance(value, bool) else "number" if isinstance(value, int | float) else "value"},
        )
    _sign, digits, exponent = number.as_tuple()
    integer_digits = max(0, len(digits) + int(exponent))
    fraction_digits = max(0, -int(exponent))
    if integer_digits > MAX_INTEGER_DIGITS or fraction_digits > MAX_FRACTION_DIGITS:
        raise PydanticCustomError(
            "decimal_out_of_range",
            "must have at most {integer} integer and {fraction} fraction digits",
            {"integer": MAX_INTEGER_DIGITS, "fraction": MAX_FRACTION_DIGITS},
        )
    return number


PositiveDecimal = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    Field(gt=0),
    # As JSON, plain notation too: str() writes 0.0000001 as "1E-7", which this type would then refuse when the
    # recorded command is read back (format "f" equals str() for every value str() writes without an exponent).
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "examples": ["0.01"]}, mode="validation"),
]


class TradeSignal(BaseModel):
    """An approved trade signal as the trading system hands it over. Unknown fields are refused (typos cost money)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    signal_id: SignalId
    pair: Annotated[str, StringConstraints(min_length=3, max_length=20)]
    side: Side
    order_type: Literal["market", "limit"]
    quantity: PositiveDecimal
    limit_price: PositiveDecimal | None = None
    sl_price: PositiveDecimal | None = None
    tp_price: PositiveDecimal | None = None
    # Seconds as a JSON number (an integer or a fraction); a bool or a string is refused, not read as 1 or parsed.
    timeout_s: Annotated[StrictFloat, Field(gt=0, le=30 * 24 * 3600)] | None = None
    tags: dict[
        Annotated[str, StringConstraints(max_length=64, pattern=_TEXT)],
        Annotated[str, StringConstraints(max_length=256, pattern=_TEXT)],
    ] = Field(default_factory=dict, max_length=32)

    def fingerprint(self) -> str:
        """A stable hash of the signal's content: the same signal_id with another content is a conflict."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _cross_field_errors(s: TradeSignal) -> list[FieldError]:
    errors: list[FieldError] = []
    if s.order_type == "limit" and s.limit_price is None:
        errors.append(FieldError("limit_price", "required_for_limit", "a limit order needs a limit_price"))
    if s.order_type == "market" and s.limit_price is not None:
        errors.append(FieldError("limit_price", "not_allowed_for_market", "a market order takes no limit_price"))
    if s.order_type == "market" and s.timeout_s is not None:
        errors.append(
            FieldError("timeout_s", "not_allowed_for_market", "a market order does not rest, so it takes no timeout")
        )
    entry = s.limit_price
    # For a buy the stop is below and the target above the entry; for a sell, mirrored.
    below, above = ("sl_price", "tp_price") if s.side is Side.BUY else ("tp_price", "sl_price")
    lo, hi = getattr(s, below), getattr(s, above)
    if entry is not None:
        if lo is not None and lo >= entry:
            errors.append(
                FieldError(
                    below,
                    f"{below.split('_')[0]}_not_below_entry_for_{s.side}",
                    f"{plain(lo)} must be below the entry {plain(entry)} for a {s.side}",
                )
            )
        if hi is not None and hi <= entry:
            errors.append(
                FieldError(
                    above,
                    f"{above.split('_')[0]}_not_above_entry_for_{s.side}",
                    f"{plain(hi)} must be above the entry {plain(entry)} for a {s.side}",
                )
            )
    elif lo is not None and hi is not None and lo >= hi:
        errors.append(
            FieldError(
                above, "bracket_inverted", f"{above} {plain(hi)} must be above {below} {plain(lo)} for a {s.side}"
            )
        )
    return errors


def parse_signal(data: Mapping[str, Any] | TradeSignal) -> TradeSignal:
    """Validate raw input into a TradeSignal; every problem becomes a FieldError naming the field and rule."""
    if isinstance(data, TradeSignal):
        signal = data
    else:
        try:
            signal = TradeSignal.model_validate(data)
        except ValidationError as exc:
            raise SignalRejected(
                [
                    FieldError(".".join(str(p) for p in err["loc"]) or "signal", err["type"], err["msg"])
                    for err in exc.errors()
                ]
            ) from None
    errors = _cross_field_errors(signal)
    if errors:
        raise SignalRejected(errors)
    return signal


@dataclass(frozen=True)
class EntryPlan:
    """A signal resolved against its pair's rules: what will be sent, and what was asked for."""

    signal: TradeSignal
    rules: PairRules
    quantity: Decimal
    limit_price: Decimal | None
    sl_price: Decimal | None
    tp_price: Decimal | None

    @property
    def order_type(self) -> OrderType:
        return OrderType(self.signal.order_type)

    def rounding(self) -> dict[str, str]:
        """Requested -> sent values that rounding changed, for the Placed event's reason."""
        changed: dict[str, str] = {}
        for name in ("quantity", "limit_price", "sl_price", "tp_price"):
            asked, sent = getattr(self.signal, name), getattr(self, name)
            if asked is not None and asked != sent:
                changed[name] = f"{plain(asked)} -> {plain(sent)}"
        return changed


def plan_entry(signal: TradeSignal, pairs: PairRegistry, last_price: Decimal | None = None) -> EntryPlan:
    """Resolve the pair, round once by its rules and reject what Kraken would reject (all errors at once).

    ``last_price`` is the pair's last public trade price (quote per base unit) if the caller knows a fresh one:
    the sl/tp of an entry that fills at once (market, or a limit the last price already reaches) are checked
    against it (``_crossed_at_entry_errors``), and a market entry's cost against ``costmin``.
    Each leg is checked against the pair's minimums for the whole quantity at its own trigger
    (``PairRules.minimum_breach``): a stop-loss or take-profit the venue would refuse even once everything is filled
    is refused here, naming its field and the minimum it breaks. Raises SignalRejected."""
    rules = pairs.find(signal.pair)
    if rules is None:
        known = ", ".join(sorted(r.wsname for r in pairs))
        raise SignalRejected(
            [FieldError("pair", "unknown_pair", f"{signal.pair!r} is not a known pair (known: {known})")]
        )
    side = signal.side
    quantity = rules.round_volume(signal.quantity)
    limit_price = rules.round_price(signal.limit_price, side) if signal.limit_price is not None else None
    exit_side = side.opposite
    sl = rules.round_price(signal.sl_price, exit_side, PriceKind.STOP) if signal.sl_price is not None else None
    tp = rules.round_price(signal.tp_price, exit_side, PriceKind.TAKE_PROFIT) if signal.tp_price is not None else None
    reference = limit_price if limit_price is not None else last_price
    errors = rules.check_new_order(order_type=OrderType(signal.order_type), volume=quantity, price=reference)
    if last_price is not None:
        errors += _crossed_at_entry_errors(signal, last_price)
    errors += _leg_errors(rules, quantity, sl, tp, volume_ok=not any(e.field == "quantity" for e in errors))
    if errors:
        raise SignalRejected(errors)
    return EntryPlan(signal=signal, rules=rules, quantity=quantity, limit_price=limit_price, sl_price=sl, tp_price=tp)


def _crossed_at_entry_errors(s: TradeSignal, last: Decimal) -> list[FieldError]:
    """An entry that fills at once fills at about the last price: a market entry, or a limit the last price already
    reaches (a buy's limit at or above it, a sell's at or below). Its legs are then checked against the last price
    as a resting limit's are against its limit: a buy's stop-loss below and take-profit above it, a sell's mirrored.
    A stop-loss triggers from the unfavourable direction and a take-profit from the favourable one (REFERENCE.md
    3.3, Kraken's order_type descriptions, trigger ``last`` by default): a buy's stop at or above the last price
    would trigger the moment it rests and sell what was just bought (the break test's finding), a take-profit at or
    below it likewise. A resting limit is checked against its limit only (``_cross_field_errors``): it fills there.
    Without a fresh last price nothing is checked here (the caller records that)."""
    limit = s.limit_price
    if limit is not None and (limit < last if s.side is Side.BUY else limit > last):
        return []  # rests: it fills at its limit, against which its legs were checked
    entry = "market" if limit is None else "marketable limit"
    errors = []
    below, above = ("sl_price", "tp_price") if s.side is Side.BUY else ("tp_price", "sl_price")
    lo, hi = getattr(s, below), getattr(s, above)
    if lo is not None and lo >= last:
        errors.append(
            FieldError(
                below,
                f"{below.split('_')[0]}_not_below_last_price_for_{s.side}",
                f"{plain(lo)} must be below the last price {plain(last)} for a {entry} {s.side}: it would trigger at "
                f"once",
            )
        )
    if hi is not None and hi <= last:
        errors.append(
            FieldError(
                above,
                f"{above.split('_')[0]}_not_above_last_price_for_{s.side}",
                f"{plain(hi)} must be above the last price {plain(last)} for a {entry} {s.side}: it would trigger at "
                f"once",
            )
        )
    return errors


def _leg_errors(
    rules: PairRules, quantity: Decimal, sl: Decimal | None, tp: Decimal | None, *, volume_ok: bool
) -> list[FieldError]:
    """Each leg for the whole quantity at its own trigger, by the pair's one minimum rule: the field named is the
    leg's price (a stop or take-profit too close to zero to be worth ``costmin``); a quantity below ``ordermin`` is
    already the entry's own error."""
    errors = []
    for field, price in (("sl_price", sl), ("tp_price", tp)):
        if price is None:
            continue
        if price <= 0:
            errors.append(
                FieldError(field, "price_rounds_to_zero", f"rounds to 0 at {rules.pair_decimals} price decimals")
            )
        elif volume_ok and (breach := rules.minimum_breach(quantity, price, volume_field=field)) is not None:
            leg = "stop-loss" if field == "sl_price" else "take-profit"
            errors.append(FieldError(field, breach.rule, f"the {leg} for the whole quantity: {breach.message}"))
    return errors
