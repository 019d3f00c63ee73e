"""The rows: pure functions from an order's projected view (and one of its events) to read-model rows.

``OrderView`` is the small per-order state the read models need (what an execution report, an orders row and a
signals row show), advanced event by event exactly as ``domain.order.Order``'s mutators advance the aggregate
(``tests/test_rows.py`` replays random histories through both and compares every report). It is kept instead of
the aggregate because re-hydrating aggregates through the event machinery was most of a rebuild's time.

Every row is a tuple in its table's column order (``tables.py``), holding database-ready values: exact decimal
text (``plain``: no exponent, no trailing zeros), naive-UTC times as ``YYYY-MM-DD HH:MM:SS.ffffff`` text (the
format SQLAlchemy's SQLite ``DateTime`` stores and PostgreSQL's ``timestamp`` parses), ids as dashed UUID text.
No I/O here.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, overload
from uuid import UUID

import orjson

from execledger.domain.events import EventKind
from execledger.domain.reasons import jsonable
from execledger.domain.reports import EXCHANGE
from execledger.domain.values import ZERO, plain

TERMINAL_STATES = frozenset({"filled", "canceled", "expired", "rejected"})
# An acknowledgement or a fill proves the order is on the book: from these states it is open (domain/order.py).
_PROVEN_PLACED_FROM = frozenset({"submitting", "outcome_unknown", "rejected"})
FILL_EVENTS = frozenset({"PartiallyFilled", "Filled"})
_DECISION = EventKind.DECISION.value

# --- value helpers ----------------------------------------------------------------------------------------------

_plain_cache: dict[str, str] = {}


def dec_text(value: Any) -> str | None:
    """Exact decimal text of a stored decimal (``"1E+1"`` -> ``"10"``); prices and sizes repeat, so it is cached."""
    if value is None:
        return None
    if isinstance(value, dict):  # the transcoder's {"_type_": "decimal_str", "_data_": "..."}
        value = value["_data_"]
    text = _plain_cache.get(value)
    if text is None:
        if len(_plain_cache) > 4096:
            _plain_cache.clear()
        text = _plain_cache[value] = plain(Decimal(value))
    return text


def dec(value: Any) -> Decimal:
    return Decimal(value["_data_"] if isinstance(value, dict) else value)


@overload
def db_time(value: None) -> None: ...
@overload
def db_time(value: str | datetime | dict[str, Any]) -> str: ...


def db_time(value: Any) -> str | None:
    """A stored time (the transcoder's ISO text, or a datetime) as naive-UTC ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value["_data_"]
    if isinstance(value, str):
        if value.endswith("+00:00") and value[10:11] == "T":  # the common case: UTC from the application clock
            core = value[:-6]
            if len(core) == 26:
                return f"{core[:10]} {core[11:]}"
            if len(core) == 19:
                return f"{core[:10]} {core[11:]}.000000"
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


@overload
def uuid_text(value: None) -> None: ...
@overload
def uuid_text(value: str | UUID | dict[str, Any]) -> str: ...


def uuid_text(value: Any) -> str | None:
    """A stored UUID (tagged hex, plain hex or dashed text) as dashed text."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value["_data_"]
    value = str(value)
    if len(value) == 32:
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return value


_VARIANT = {c: "89ab"[int(c, 16) & 0x3] for c in "0123456789abcdef"}


def report_event_id(order_id: str, version: int, id_bytes: bytes | None = None) -> str:
    """``domain.reports.report_id`` (uuid5 of the order id and ``report:<version>``) without building UUID objects."""
    if id_bytes is None:
        id_bytes = bytes.fromhex(order_id.replace("-", ""))
    h = hashlib.sha1(id_bytes + b"report:%d" % version).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def _untag(value: Any) -> Any:
    """The transcoder's tagged values turned into what ``jsonable`` makes of the decoded types."""
    if isinstance(value, dict):
        if value.keys() == {"_type_", "_data_"}:
            kind, data = value["_type_"], value["_data_"]
            if kind == "decimal_str":
                return plain(Decimal(data))
            if kind == "uuid_hex":
                return uuid_text(data)
            if kind == "datetime_iso":
                return str(datetime.fromisoformat(data))
            return jsonable(data)
        return {str(k): _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def reason_json(why: dict | None) -> str:
    """A decision's reason as sorted, compact JSON text (values as the audit shows them: decimals as text)."""
    if not why:
        return "{}"
    try:
        out = orjson.dumps(why, option=orjson.OPT_SORT_KEYS)
        if b'"_type_"' in out:  # a reason that carried a Decimal, UUID or datetime: rare, so checked after
            out = orjson.dumps(_untag(why), option=orjson.OPT_SORT_KEYS)
        return out.decode()
    except TypeError:  # beyond orjson (an integer over 64 bits): the standard library writes it
        return json.dumps(_untag(why), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- the view ---------------------------------------------------------------------------------------------------


class OrderView:
    """What the read models know of one order after its latest projected event. Times are ``db_time`` text;
    filled quantity, cost and fees are exact ``Decimal`` sums, with their ``plain`` texts kept beside them (they
    change only on fills, while every report shows them)."""

    __slots__ = (
        "avg_text",
        "cl_ord_id",
        "created_at",
        "fee_asset",
        "fees",
        "fees_text",
        "filled_cost",
        "filled_quantity",
        "filled_text",
        "id_bytes",
        "last_error",
        "limit_price",
        "order_id",
        "order_type",
        "pair",
        "parent_id",
        "quantity",
        "role",
        "side",
        "signal_id",
        "state",
        "trigger_price",
        "txid",
        "updated_at",
        "version",
    )
    # The slots' types (a slotted class declares them apart from the tuple above).
    avg_text: str | None
    cl_ord_id: str
    created_at: str
    fee_asset: str | None
    fees: Decimal
    fees_text: str
    filled_cost: Decimal
    filled_quantity: Decimal
    filled_text: str
    id_bytes: bytes
    last_error: str | None
    limit_price: str | None
    order_id: str
    order_type: str
    pair: str
    parent_id: str | None
    quantity: str | None
    role: str
    side: str
    signal_id: str
    state: str
    trigger_price: str | None
    txid: str | None
    updated_at: str
    version: int

    def __init__(self, **fields: Any):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))
        self.filled_quantity = self.filled_quantity or ZERO
        self.filled_cost = self.filled_cost or ZERO
        self.fees = self.fees or ZERO
        self._texts()

    def _texts(self) -> None:
        self.id_bytes = bytes.fromhex(self.order_id.replace("-", ""))
        self.filled_text = plain(self.filled_quantity)
        self.fees_text = plain(self.fees)
        self.avg_text = plain(self.filled_cost / self.filled_quantity) if self.filled_quantity else None

    @classmethod
    def placed(cls, order_id: str, version: int, e: dict, at: str) -> OrderView:
        v = cls.__new__(cls)
        v.order_id = order_id
        v.id_bytes = bytes.fromhex(order_id.replace("-", ""))
        v.signal_id = e["signal_id"]
        v.role = e["role"]
        v.parent_id = uuid_text(e.get("parent_id"))
        v.pair = e["pair"]
        v.side = e["side"]
        v.order_type = e["order_type"]
        v.quantity = dec_text(e["quantity"])
        v.limit_price = dec_text(e.get("limit_price"))
        v.trigger_price = dec_text(e.get("trigger_price"))
        v.cl_ord_id = e["cl_ord_id"]
        v.state = "pending_submit"
        v.txid = v.fee_asset = v.last_error = v.avg_text = None
        v.filled_quantity = v.filled_cost = v.fees = ZERO
        v.filled_text = v.fees_text = "0"
        v.created_at = v.updated_at = at
        v.version = version
        return v

    @property
    def status(self) -> str:
        """``OrderStatus``: the state, with ``partially_filled`` derived for an open order that has fills."""
        if self.state == "open" and self.filled_quantity:
            return "partially_filled"
        return self.state

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def average_fill_price(self) -> Decimal | None:
        return self.filled_cost / self.filled_quantity if self.filled_quantity else None

    def apply(self, name: str, version: int, e: dict, at: str) -> None:
        """Advance by one stored event recorded at ``at``, as the aggregate's mutator for ``name`` does (state,
        fills, txid, error)."""
        self.version = version
        self.updated_at = at
        if name in FILL_EVENTS:
            quantity = dec(e["quantity"])
            self.filled_quantity += quantity
            self.filled_cost += quantity * dec(e["price"])
            self.fees += dec(e["fee"])
            self.filled_text = plain(self.filled_quantity)
            self.fees_text = plain(self.fees)
            self.avg_text = plain(self.filled_cost / self.filled_quantity)
            if e.get("fee_asset"):
                self.fee_asset = e["fee_asset"]
            if name == "Filled":
                self.state = "filled"
            elif self.state in _PROVEN_PLACED_FROM:
                self.state = "open"
        elif name == "Submitted":
            self.state = "submitting"
        elif name == "Acknowledged":
            self.txid = e["txid"]
            if self.state in _PROVEN_PLACED_FROM:
                self.state = "open"
        elif name == "Corrected":  # re-rounded or resized before it is sent again
            self.quantity = dec_text(e["quantity"])
            self.limit_price = dec_text(e.get("limit_price"))
            self.trigger_price = dec_text(e.get("trigger_price"))
        elif name == "Amended":  # the venue shows a new total quantity (AmendOrder, or a report of the order)
            self.quantity = dec_text(e["quantity"])
            if self.filled_quantity == dec(e["quantity"]) and self.state in ("open", "cancel_pending"):
                self.state = "filled"  # shrunk to what had filled: nothing is left to work
        elif name == "NotSent":
            self.state, self.last_error = "pending_submit", e.get("error")
        elif name == "Rejected":
            self.state, self.last_error = "rejected", e.get("error")
        elif name == "SubmissionOutcomeUnknown":
            self.state, self.last_error = "outcome_unknown", e.get("error")
        elif name == "CancelRequested":
            self.state = "cancel_pending"
        elif name == "CancelRejected":
            self.state, self.last_error = "open", e.get("error")
        elif name == "Canceled":
            self.state = "canceled"
        elif name == "Expired":
            self.state = "expired"
        # The other events (TimedOut, Deferred, brackets, conflicts, close and operator decisions) change nothing
        # a row shows; tests/test_rows.py replays random histories through the aggregate to keep this true.


# --- rows of one event ------------------------------------------------------------------------------------------


def report_row(v: OrderView, name: str, version: int, e: dict, reported: bool) -> tuple | None:
    """The ``execution_reports`` row for event ``name`` of ``v`` (the view right after it); None unless the event
    class declares itself ``reported``. Same values as ``domain.reports.execution_report`` on the aggregate."""
    if not reported:
        return None
    error = e.get("error")
    if error is None and name in ("Canceled", "Expired"):
        error = e.get("venue_reason") or (e.get("reason") or {}).get("text")
    executed = e.get("executed_at")
    return (
        report_event_id(v.order_id, version, v.id_bytes),
        v.order_id,
        version,
        name,
        v.updated_at,
        v.signal_id,
        v.role,
        v.txid,
        v.cl_ord_id,
        v.pair,
        EXCHANGE,
        _UPPER[v.status],
        _UPPER[v.order_type],
        _UPPER[v.side],
        v.quantity,
        v.filled_text,
        v.limit_price,
        v.trigger_price,
        v.avg_text,
        v.fees_text,
        v.fee_asset,
        None if executed is None else db_time(executed),
        error,
    )


class _Upper(dict):
    def __missing__(self, key: str) -> str:
        self[key] = key.upper()
        return self[key]


_UPPER = _Upper()


def fill_row(v: OrderView, name: str, e: dict, at: str) -> tuple | None:
    """The ``fills`` row of a fill event (one trade), else None."""
    if name not in FILL_EVENTS:
        return None
    executed = e.get("executed_at")
    return (
        v.order_id,
        e["trade_id"],
        v.signal_id,
        v.role,
        v.pair,
        v.side,
        dec_text(e["quantity"]),
        dec_text(e["price"]),
        dec_text(e["fee"]),
        e.get("fee_asset") or None,
        None if executed is None else db_time(executed),
        at,
        e.get("source"),
    )


def decision_row(v: OrderView, name: str, version: int, e: dict, at: str, kind: str) -> tuple | None:
    """The ``decisions`` row of an event of ``kind`` decision, or of any event that carries a reason; else None."""
    why = e.get("reason")
    if kind != _DECISION and not why:
        return None
    why = why or {}
    return (v.order_id, version, v.signal_id, name, kind, why.get("rule"), why.get("text"), reason_json(why), at)


# --- rows of current state --------------------------------------------------------------------------------------


def order_row(v: OrderView) -> tuple:
    """The ``orders`` row: the order as it is now."""
    return (
        v.order_id,
        v.signal_id,
        v.role,
        v.parent_id,
        v.pair,
        v.side,
        v.order_type,
        v.quantity,
        v.limit_price,
        v.trigger_price,
        v.status,
        v.filled_text,
        v.avg_text,
        v.fees_text,
        v.fee_asset,
        v.txid,
        v.cl_ord_id,
        v.last_error,
        v.created_at,
        v.updated_at,
        v.version,
    )


def signal_row(signal_id: str, members: list[OrderView]) -> tuple:
    """The ``signals`` row: the entry and every leg of one signal, its position, realised PnL and fees."""
    members = sorted(members, key=lambda o: o.order_id)
    entry = next((o for o in members if o.role == "entry"), None)
    exits = [o for o in members if o.role != "entry"]
    exit_qty = sum((o.filled_quantity for o in exits), ZERO)
    exit_cost = sum((o.filled_cost for o in exits), ZERO)
    fees = sum((o.fees for o in members), ZERO)
    entry_avg = entry.average_fill_price if entry is not None else None
    pnl = None
    if entry_avg is not None and exit_qty > ZERO:
        sign = 1 if entry is not None and entry.side == "buy" else -1  # entry_avg is set: so is entry
        pnl = sign * (exit_cost - exit_qty * entry_avg)
    return (
        signal_id,
        entry.order_id if entry else None,
        entry.pair if entry else None,
        entry.side if entry else None,
        entry.status if entry else None,
        entry.filled_text if entry else None,
        entry.avg_text if entry else None,
        plain(exit_qty),
        plain(exit_cost / exit_qty) if exit_qty else None,
        plain((entry.filled_quantity if entry else ZERO) - exit_qty),
        plain(pnl) if pnl is not None else None,
        plain(fees),
        sum(1 for o in exits if not o.is_terminal),
        len(exits),
        max((o.updated_at for o in members), default=None),
    )
