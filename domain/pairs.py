"""Trading rules of a Kraken pair, taken from AssetPairs: the one place that rounds prices and volumes.

Rounding policy (recorded on every Placed event, so audit shows what was asked and what was sent):
- volumes round *down* to ``lot_decimals``: never trade more than the signal asked for;
- limit prices round toward the passive side (buy down, sell up) onto the tick grid: rounding never makes an
  order more aggressive than its signal;
- trigger prices round away from the market: a stop-loss so that it triggers no earlier than asked (a sell stop
  down, a buy stop up: the nearest tick once put a stop onto the market price, which then fired at once), a
  take-profit so that it takes no less profit than asked (a sell up, a buy down).
After rounding, what Kraken would reject is rejected here with the error Kraken would give, named per field.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, event

from execledger.domain.clock import TimestampedEvent
from execledger.domain.errors import FieldError
from execledger.domain.values import ZERO, OrderType, Side, plain, to_decimal


class PairStatus(StrEnum):
    ONLINE = "online"
    CANCEL_ONLY = "cancel_only"
    POST_ONLY = "post_only"
    LIMIT_ONLY = "limit_only"
    REDUCE_ONLY = "reduce_only"


class PriceKind(StrEnum):
    LIMIT = "limit"  # a limit price: rounded toward the passive side (buy down, sell up)
    STOP = "stop"  # a stop-loss trigger: rounded away from the market (a sell stop down, a buy stop up)
    TAKE_PROFIT = "take_profit"  # a take-profit trigger: away from the market too (a sell up, a buy down)


@dataclass(frozen=True)
class PairRules:
    """The subset of a Kraken AssetPairs entry that decides whether an order is acceptable."""

    key: str  # AssetPairs key, e.g. XXBTZUSD
    altname: str  # e.g. XBTUSD (what REST AddOrder takes and descr.pair echoes)
    wsname: str  # e.g. XBT/USD
    base: str
    quote: str
    pair_decimals: int
    lot_decimals: int
    cost_decimals: int
    ordermin: Decimal
    costmin: Decimal | None
    tick_size: Decimal | None
    status: PairStatus

    @classmethod
    def from_kraken(cls, key: str, info: Mapping[str, Any]) -> PairRules:
        """Build from one ``result`` entry of ``GET /0/public/AssetPairs`` (strings stay exact)."""
        try:
            pair_decimals = int(info["pair_decimals"])
            tick = info.get("tick_size")
            costmin = info.get("costmin")
            return cls(
                key=key,
                altname=str(info["altname"]),
                wsname=str(info.get("wsname") or info["altname"]),
                base=str(info["base"]),
                quote=str(info["quote"]),
                pair_decimals=pair_decimals,
                lot_decimals=int(info["lot_decimals"]),
                cost_decimals=int(info.get("cost_decimals", pair_decimals)),
                ordermin=to_decimal(info.get("ordermin", "0")),
                costmin=to_decimal(costmin) if costmin not in (None, "") else None,
                tick_size=to_decimal(tick) if tick not in (None, "") else None,
                status=PairStatus(info.get("status", "online")),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"AssetPairs entry {key!r} is not usable: {exc}") from exc

    @property
    def display_name(self) -> str:
        return self.wsname

    def as_record(self) -> dict[str, str | int | None]:
        """The rules as plain JSON values (decimals as exact text), for the rules snapshot kept in the store."""
        return {
            "key": self.key,
            "altname": self.altname,
            "wsname": self.wsname,
            "base": self.base,
            "quote": self.quote,
            "pair_decimals": self.pair_decimals,
            "lot_decimals": self.lot_decimals,
            "cost_decimals": self.cost_decimals,
            "ordermin": plain(self.ordermin),
            "costmin": plain(self.costmin) if self.costmin is not None else None,
            "tick_size": plain(self.tick_size) if self.tick_size is not None else None,
            "status": self.status.value,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PairRules:
        return cls.from_kraken(str(record["key"]), record)

    # -- rounding -------------------------------------------------------------------------------------------

    def _price_step(self) -> Decimal:
        step = Decimal(1).scaleb(-self.pair_decimals)
        if self.tick_size is not None and self.tick_size > step:
            return self.tick_size
        return step

    def round_price(self, price: Decimal, side: Side, kind: PriceKind = PriceKind.LIMIT) -> Decimal:
        """Round a price onto the pair's price grid (see the module docstring for the direction)."""
        step = self._price_step()
        # LIMIT and TAKE_PROFIT move away from the market the same way; a STOP the other way round. So rounding
        # never makes an order more aggressive than asked, and never puts a stop onto the market price.
        down = (side is Side.BUY) if kind is not PriceKind.STOP else (side is Side.SELL)
        rounding = ROUND_FLOOR if down else ROUND_CEILING
        units = (price / step).quantize(Decimal(1), rounding=rounding)
        return (units * step).quantize(Decimal(1).scaleb(-self.pair_decimals))

    def round_volume(self, volume: Decimal) -> Decimal:
        """Round a base-currency volume down to ``lot_decimals``."""
        return volume.quantize(Decimal(1).scaleb(-self.lot_decimals), rounding=ROUND_FLOOR)

    # -- acceptance ------------------------------------------------------------------------------------------

    def check_new_order(
        self,
        *,
        order_type: OrderType,
        volume: Decimal,
        price: Decimal | None,
        volume_field: str = "quantity",
        price_field: str = "limit_price",
        reduce_only: bool = False,
        post_only: bool = False,
    ) -> list[FieldError]:
        """Return what Kraken would reject about this (already rounded) order; empty means acceptable.

        ``price`` is the price the cost check uses: the limit price, or for a market order a reference price
        if the caller has one (else the cost minimum cannot be checked here and the venue will decide).
        """
        errors = self._status_errors(order_type, reduce_only=reduce_only, post_only=post_only)
        if price is not None and price <= ZERO:
            errors.append(
                FieldError(price_field, "price_rounds_to_zero", f"rounds to 0 at {self.pair_decimals} price decimals")
            )
            price = None
        breach = self.minimum_breach(volume, price, volume_field=volume_field)
        if breach is not None:
            errors.append(breach)
        return errors

    def minimum_breach(
        self, volume: Decimal, price: Decimal | None, *, volume_field: str = "quantity"
    ) -> FieldError | None:
        """The one minimum rule: which of Kraken's minimums an order of ``volume`` (base units, already rounded)
        at ``price`` (quote per base unit; None when no price is known, then the cost is not checked) breaks, or
        None when it meets them. Each breach names its rule, as Kraken names its refusal (REFERENCE.md 2, section
        4; AssetPairs ``ordermin``/``costmin``, fixture ``rest_asset_pairs_captured_trimmed_XXBTZUSD_XETHZUSD``):

        - ``volume_rounds_to_zero``: nothing left at ``lot_decimals``;
        - ``ordermin``: the volume is below ``ordermin`` (base units): ``EOrder:Order minimum not met``;
        - ``costmin``: the cost ``volume x price`` is below ``costmin`` (quote units): ``EOrder:Cost minimum not
          met``. A pair without ``costmin`` has no cost minimum.

        ``field`` of the breach is ``volume_field``: the size is what would have to change."""
        if volume <= ZERO:
            return FieldError(volume_field, "volume_rounds_to_zero", f"rounds to 0 at {self.lot_decimals} lot decimals")
        if volume < self.ordermin:
            return FieldError(
                volume_field,
                "ordermin",
                f"volume {plain(volume)} is below the pair's ordermin {plain(self.ordermin)} {self.base}",
            )
        if price is not None and self.costmin is not None and volume * price < self.costmin:
            return FieldError(
                volume_field,
                "costmin",
                f"cost {plain(volume * price)} ({plain(volume)} at {plain(price)}) is below the pair's costmin "
                f"{plain(self.costmin)} {self.quote}",
            )
        return None

    def _status_errors(self, order_type: OrderType, *, reduce_only: bool, post_only: bool) -> list[FieldError]:
        """What the pair's status mode refuses (cancel_only, post_only, limit_only, reduce_only)."""
        if self.status is PairStatus.CANCEL_ONLY:
            return [FieldError("pair", "pair_cancel_only", f"{self.wsname} is in cancel_only mode: no new orders")]
        if self.status is PairStatus.POST_ONLY and not (order_type is OrderType.LIMIT and post_only):
            return [
                FieldError("pair", "pair_post_only", f"{self.wsname} is in post_only mode: only post-only limit orders")
            ]
        if self.status is PairStatus.LIMIT_ONLY and order_type is OrderType.MARKET:
            return [
                FieldError("order_type", "pair_limit_only", f"{self.wsname} is in limit_only mode: no market orders")
            ]
        if self.status is PairStatus.REDUCE_ONLY and not reduce_only:
            return [
                FieldError(
                    "pair", "pair_reduce_only", f"{self.wsname} is in reduce_only mode: only position-reducing orders"
                )
            ]
        return []


def _norm(name: str) -> str:
    # WS v2 and most people say BTC where Kraken's REST names say XBT.
    parts = name.strip().upper().split("/")
    return "/".join("XBT" + p[3:] if p.startswith("BTC") else p for p in parts)


class PairRegistry:
    """Looks pairs up by AssetPairs key (``XXBTZUSD``), altname (``XBTUSD``) or wsname (``XBT/USD``, ``BTC/USD``)."""

    def __init__(self, pairs: Iterable[PairRules]):
        self._by_name: dict[str, PairRules] = {}
        self._pairs = list(pairs)
        self.skipped: list[str] = []
        for rules in self._pairs:
            for name in (rules.key, rules.altname, rules.wsname):
                self._by_name[_norm(name)] = rules

    @classmethod
    def from_asset_pairs(cls, payload: Mapping[str, Any]) -> PairRegistry:
        """Build from a whole AssetPairs response (``{"error": [], "result": {...}}``) or its ``result``. An entry
        the ledger cannot use (a status it does not know, a missing field) is left out and named in ``skipped``:
        one odd pair must not make every other pair untradeable."""
        result = payload.get("result", payload)
        usable, skipped = [], []
        for key, info in result.items():
            try:
                usable.append(PairRules.from_kraken(key, info))
            except ValueError:
                skipped.append(key)
        registry = cls(usable)
        registry.skipped = skipped
        return registry

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> PairRegistry:
        return cls(PairRules.from_record(r) for r in records)

    def records(self) -> list[dict[str, str | int | None]]:
        return [rules.as_record() for rules in sorted(self._pairs, key=lambda r: r.key)]

    def fingerprint(self) -> str:
        """A stable hash of every pair's rules: the same rules give the same fingerprint."""
        text = json.dumps(self.records(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def find(self, name: str) -> PairRules | None:
        # Names as given are remembered: a reconciliation parses every open order's pair twice (10,000 at start).
        try:
            return self._by_name[name]
        except KeyError:
            rules = self._by_name.get(_norm(name))
        if rules is not None:
            self._by_name[name] = rules
        return rules

    def require(self, name: str) -> PairRules:
        """The rules of a pair the ledger already trades (its orders were placed by them): LookupError if gone."""
        rules = self.find(name)
        if rules is None:
            raise LookupError(f"no pair rules for {name}")
        return rules

    def __iter__(self) -> Iterator[PairRules]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)


VENUE_RULES_ID = uuid.UUID("5f1d7c3e-9a4b-4c2e-8f3a-1b2c3d4e5f60")


class VenueRules(Aggregate):
    """The venue's pair rules as last loaded (Kraken AssetPairs), kept in the store so a start without the venue
    still trades by the rules it last saw. One per ledger; a new snapshot is recorded only when the rules changed."""

    class Event(TimestampedEvent):
        pass

    class Created(Event, Aggregate.Created):
        pass

    @event("Started")
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.fingerprint = ""
        self.source = ""

    @staticmethod
    def create_id() -> uuid.UUID:
        return VENUE_RULES_ID

    def load(self, registry: PairRegistry, *, source: str) -> bool:
        """Record the rules if they differ from the last snapshot; returns whether they did."""
        fingerprint = registry.fingerprint()
        if fingerprint == self.fingerprint:
            return False
        self._loaded(records=registry.records(), fingerprint=fingerprint, source=source)
        return True

    @event("Loaded")
    def _loaded(self, records: list[dict[str, Any]], fingerprint: str, source: str) -> None:
        self.records, self.fingerprint, self.source = list(records), fingerprint, source

    def registry(self) -> PairRegistry | None:
        return PairRegistry.from_records(self.records) if self.records else None
