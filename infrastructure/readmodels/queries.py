"""Report queries over the read-model tables, with validated filters and offset pagination."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Engine, Table, and_, func, or_, select

from execledger.domain.errors import FieldError
from execledger.domain.order import OrderStatus
from execledger.domain.pairs import PairRegistry
from execledger.domain.signal import SIGNAL_ID_PATTERN
from execledger.domain.values import OrderRole, plain
from execledger.infrastructure.present import exit_reason_of
from execledger.infrastructure.readmodels import tables as t


class BadQuery(ValueError):
    """Invalid filters: one FieldError per problem (the API answers 400 with them)."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


class ListFilter(BaseModel):
    """Filters shared by the list endpoints and ``execledger report``. Unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    signal_id: str | None = Field(default=None, max_length=64, pattern=SIGNAL_ID_PATTERN)  # no NUL for PostgreSQL
    pair: str | None = Field(default=None, max_length=20)
    status: OrderStatus | None = None  # signals: the entry's status
    role: OrderRole | None = None  # orders, execution reports and fills (signals have no role)
    text: str | None = Field(  # a part of any id: signal id, order id, txid, cl_ord_id (trade id for fills)
        default=None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$"
    )
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=2**31 - 1)  # an OFFSET past int64 crashed the driver (issue 14)

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        except OverflowError:  # 9999-12-31T23:59:59-23:59 is past year 9999 in UTC
            raise ValueError("is out of range once converted to UTC") from None


def parse_filter(params: dict[str, Any], pairs: PairRegistry) -> ListFilter:
    """Validate raw query parameters; the pair may be given as XBT/USD, XBTUSD or XXBTZUSD."""
    try:
        f = ListFilter.model_validate(params)
    except ValidationError as exc:
        raise BadQuery(
            [FieldError(".".join(map(str, e["loc"])) or "query", e["type"], e["msg"]) for e in exc.errors()]
        ) from None
    errors = []
    if f.pair is not None:
        rules = pairs.find(f.pair)
        if rules is None:
            errors.append(FieldError("pair", "unknown_pair", f"{f.pair!r} is not a known pair"))
        else:
            f = f.model_copy(update={"pair": rules.key})
    if f.since and f.until and f.since > f.until:
        errors.append(FieldError("since", "since_after_until", "since must not be after until"))
    if errors:
        raise BadQuery(errors)
    return f


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.offset + self.limit < self.total else None


def _row(mapping) -> dict[str, Any]:
    return {k: (v.replace(tzinfo=UTC).isoformat() if isinstance(v, datetime) else v) for k, v in mapping.items()}


class ReportQueries:
    def __init__(self, engine: Engine):
        self.engine = engine

    def _page(
        self,
        table: Table,
        f: ListFilter,
        *,
        pair_col: str,
        status_col: str | None,
        time_col: str,
        order_by: tuple,
        status_upper: bool = False,
        text_cols: tuple[str, ...] = ("signal_id",),
    ) -> Page:
        conds = []
        c = table.c
        if f.signal_id is not None:
            conds.append(c.signal_id == f.signal_id)
        if f.pair is not None:
            conds.append(c[pair_col] == f.pair)
        if f.status is not None and status_col is not None:
            conds.append(c[status_col] == (f.status.value.upper() if status_upper else f.status.value))
        if f.role is not None and "role" in c:
            conds.append(c.role == f.role.value)
        if f.text is not None:  # a substring, case-insensitive (txids are upper case), LIKE wildcards taken literally
            like = "%" + f.text.upper().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conds.append(or_(*(func.upper(c[name]).like(like, escape="\\") for name in text_cols)))
        if f.since is not None:
            conds.append(c[time_col] >= f.since)
        if f.until is not None:
            conds.append(c[time_col] <= f.until)
        where = and_(*conds) if conds else None
        with self.engine.connect() as conn:
            count = select(func.count()).select_from(table)
            total = conn.execute(count.where(where) if where is not None else count).scalar_one()
            query = select(table).order_by(*order_by).limit(f.limit).offset(f.offset)
            rows = conn.execute(query.where(where) if where is not None else query).mappings().all()
        return Page([_row(r) for r in rows], total, f.limit, f.offset)

    def orders(self, f: ListFilter) -> Page:
        return self._page(
            t.orders,
            f,
            pair_col="pair",
            status_col="status",
            time_col="created_at",
            order_by=(t.orders.c.created_at, t.orders.c.order_id),
            text_cols=("signal_id", "order_id", "txid", "cl_ord_id"),
        )

    def execution_reports(self, f: ListFilter) -> Page:
        return self._page(
            t.execution_reports,
            f,
            pair_col="trading_pair",
            status_col="order_status",
            time_col="timestamp",
            status_upper=True,
            order_by=(t.execution_reports.c.timestamp, t.execution_reports.c.order_id, t.execution_reports.c.version),
            text_cols=("signal_id", "order_id", "exchange_order_id", "client_order_id"),
        )

    def fills(self, f: ListFilter) -> Page:
        return self._page(
            t.fills,
            f,
            pair_col="pair",
            status_col=None,
            time_col="recorded_at",
            order_by=(t.fills.c.recorded_at, t.fills.c.trade_id),
            text_cols=("signal_id", "order_id", "trade_id"),
        )

    def signals(self, f: ListFilter) -> Page:
        return self._page(
            t.signals,
            f,
            pair_col="pair",
            status_col="entry_status",
            time_col="updated_at",
            order_by=(t.signals.c.updated_at, t.signals.c.signal_id),
            text_cols=("signal_id", "entry_order_id"),
        )

    def order(self, order_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.orders).where(t.orders.c.order_id == order_id)).mappings().first()
        return _row(row) if row else None

    def decisions(self, signal_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(t.decisions)
                    .where(t.decisions.c.signal_id == signal_id)
                    .order_by(t.decisions.c.recorded_at, t.decisions.c.version)
                )
                .mappings()
                .all()
            )
        return [_row(r) for r in rows]

    def order_counts(self) -> dict[tuple[str, str], int]:
        """``{(status, role): number of orders}`` over the whole orders table (the metrics' orders gauge)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.orders.c.status, t.orders.c.role, func.count()).group_by(t.orders.c.status, t.orders.c.role)
            ).all()
        return {(status, role): n for status, role, n in rows}

    # --- operator views (read the tables as they are; their columns belong to the projector) -------------

    def find_order_id(self, ident: str) -> str | None:
        """The order whose Kraken txid or cl_ord_id is ``ident`` (txids compared case-insensitively)."""
        ident = ident.strip()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.orders.c.order_id).where(
                    (t.orders.c.cl_ord_id == ident) | (func.upper(t.orders.c.txid) == ident.upper())
                )
            ).first()
        return row[0] if row else None

    def cancel_reasons(self, order_ids: list[str]) -> dict[str, str]:
        """For each order, the rule of the last decision to cancel it (``oco_cancel_sibling``, ``timeout_cancel``):
        why *we* canceled, where the venue only says ``User requested``."""
        if not order_ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.decisions.c.order_id, t.decisions.c.rule)
                .where(t.decisions.c.order_id.in_(sorted(set(order_ids))), t.decisions.c.event == "CancelRequested")
                .order_by(t.decisions.c.version)
            ).all()
        return {str(r[0]): str(r[1]) for r in rows}

    def signal_orders(self, signal_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(t.orders)
                    .where(t.orders.c.signal_id == signal_id)
                    .order_by(t.orders.c.created_at, t.orders.c.order_id)
                )
                .mappings()
                .all()
            )
        return [_row(r) for r in rows]

    def live_orders(self) -> list[dict[str, Any]]:
        """Every order not in a final state (working on the venue, or about to be)."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(t.orders)
                    .where(t.orders.c.status.not_in(FINAL_STATUSES))
                    .order_by(t.orders.c.created_at, t.orders.c.order_id)
                )
                .mappings()
                .all()
            )
        return [_row(r) for r in rows]

    def positions(self) -> list[dict[str, Any]]:
        """Signals still holding a position (entry fills minus exit fills), oldest change first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.signals).order_by(t.signals.c.updated_at)).mappings().all()
        return [
            {
                "signal_id": r["signal_id"],
                "pair": r["pair"],
                "side": r["side"],
                "position": r["position"],
                "entry_avg_px": _round_px(r["entry_average_price"]),
                "open_legs": r["open_legs"],
                "realised_pnl": r["realised_pnl"],
                "fees": r["fees"],
            }
            for r in rows
            if r["position"] not in (None, "") and Decimal(r["position"]) != 0
        ]

    def signal_summaries(self, f: ListFilter, pairs: PairRegistry | None = None) -> Page:
        """One row per signal with its outcome (see ``summarise_signal``), paginated like ``signals``."""
        page = self.signals(f)
        return Page(self._summaries(page.items, pairs), page.total, page.limit, page.offset)

    def _summaries(self, signal_rows: list[dict[str, Any]], pairs: PairRegistry | None) -> list[dict[str, Any]]:
        ids = [r["signal_id"] for r in signal_rows]
        if not ids:
            return []
        orders: dict[str, list] = {i: [] for i in ids}
        fills: dict[str, list] = {i: [] for i in ids}
        decisions: dict[str, list] = {i: [] for i in ids}
        with self.engine.connect() as conn:
            for r in conn.execute(select(t.orders).where(t.orders.c.signal_id.in_(ids))).mappings():
                orders[r["signal_id"]].append(dict(r))
            for r in conn.execute(select(t.fills).where(t.fills.c.signal_id.in_(ids))).mappings():
                fills[r["signal_id"]].append(dict(r))
            for r in conn.execute(
                select(t.decisions.c.signal_id, t.decisions.c.order_id, t.decisions.c.event, t.decisions.c.rule).where(
                    t.decisions.c.signal_id.in_(ids), t.decisions.c.event.in_(("Placed", "TimedOut"))
                )
            ).mappings():
                decisions[r["signal_id"]].append(dict(r))
        return [
            summarise_signal(r, orders[r["signal_id"]], fills[r["signal_id"]], decisions[r["signal_id"]], pairs)
            for r in signal_rows
        ]

    def profit(self, f: ListFilter, pairs: PairRegistry | None = None) -> list[dict[str, Any]]:
        """A PnL summary like Freqtrade's ``/profit``: rows ``{group, key, quote, trades, wins, losses, win_rate,
        realised_pnl, fees, net_pnl}`` for the totals (per quote currency), each exit reason, pair and day
        (UTC, by close time). Only closed positions count; ``f``'s pair and since/until (close time) filter."""
        summaries: list[dict[str, Any]] = []
        offset = 0
        base = f.model_copy(update={"since": None, "until": None, "limit": 1000, "status": None, "signal_id": None})
        while True:
            page = self.signals(base.model_copy(update={"offset": offset}))
            summaries += self._summaries(page.items, pairs)
            if page.next_offset is None:
                break
            offset = page.next_offset
        closed = [s for s in summaries if s["state"] == "closed"]
        if f.since is not None:
            closed = [s for s in closed if s["closed_at"] and s["closed_at"] >= _iso_utc(f.since)]
        if f.until is not None:
            closed = [s for s in closed if s["closed_at"] and s["closed_at"] <= _iso_utc(f.until)]
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for s in closed:
            for group, key in (
                ("total", "all"),
                ("exit_reason", s["exit_reason"]),
                ("pair", s["pair"]),
                ("day", s["closed_at"][:10]),
            ):
                groups.setdefault((group, key, s["quote"]), []).append(s)
        order = {"total": 0, "exit_reason": 1, "pair": 2, "day": 3}
        rows = [_profit_row(g, k, q, members) for (g, k, q), members in groups.items()]
        rows.sort(key=lambda r: (order[r["group"]], r["key"], r["quote"]))
        return rows


FINAL_STATUSES = ("filled", "canceled", "expired", "rejected")


def _iso_utc(value: datetime) -> str:
    return value.replace(tzinfo=UTC).isoformat() if value.tzinfo is None else value.astimezone(UTC).isoformat()


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _time(row: dict[str, Any]) -> datetime | None:
    return row.get("executed_at") or row.get("recorded_at")


def summarise_signal(
    signal: dict[str, Any],
    orders: list[dict[str, Any]],
    fills: list[dict[str, Any]],
    decisions: list[dict[str, Any]],
    pairs: PairRegistry | None = None,
) -> dict[str, Any]:
    """A signal's outcome from its rows: ``state`` (``working``: nothing filled yet; ``open``: a position is held;
    ``closed``: it was flat again; ``not_filled``: the entry ended with nothing filled), ``exit_reason``
    (``take_profit``, ``stop_loss``, ``manual``, or for ``not_filled`` ``timeout``/``canceled``/``expired``/
    ``rejected``), ``opened_at``/``closed_at`` (first entry fill, last exit fill when flat), quantities and prices,
    ``realised_pnl`` (quote currency), ``fees`` and ``net_pnl`` = realised PnL - fees. Fees are summed as recorded;
    Kraken charges them in the quote currency by default (REFERENCE.md, AddOrder ``oflags`` fcib/fciq), which is
    what net PnL assumes."""
    entry = next((o for o in orders if o["role"] == "entry"), None)
    rules = pairs.find(signal.get("pair") or "") if pairs is not None else None
    pair = rules.wsname if rules is not None else signal.get("pair")
    quote = pair.split("/")[1] if pair and "/" in pair else (rules.quote if rules is not None else "")
    entry_fills = [x for x in fills if x["role"] == "entry"]
    exit_fills = [x for x in fills if x["role"] != "entry"]
    position = _dec(signal.get("position"))
    entry_filled = _dec(signal.get("entry_filled"))
    entry_status = signal.get("entry_status")
    timed_out = any(d["event"] == "TimedOut" and entry and d["order_id"] == entry["order_id"] for d in decisions)
    reason: str | None = None
    if entry_filled == 0:
        if entry_status in FINAL_STATUSES:
            state = "not_filled"
            reason = "timeout" if timed_out else entry_status
        else:
            state = "working"
    elif position != 0:
        state = "open"
    else:
        state = "closed"
        by_role: dict[str, Decimal] = {}
        for x in exit_fills:
            by_role[x["order_id"]] = by_role.get(x["order_id"], Decimal(0)) + _dec(x["quantity"])
        biggest = max(by_role, key=lambda k: by_role[k]) if by_role else None
        leg = next((o for o in orders if o["order_id"] == biggest), None)
        placed_rule = next(
            (d["rule"] for d in decisions if d["event"] == "Placed" and leg and d["order_id"] == leg["order_id"]), None
        )
        reason = exit_reason_of(leg["role"], placed_rule) if leg else "manual"
    opened = min((t for t in map(_time, entry_fills) if t), default=None)
    closed = max((t for t in map(_time, exit_fills) if t), default=None) if state == "closed" else None
    pnl = _dec(signal.get("realised_pnl")) if signal.get("realised_pnl") is not None else None
    fees = _dec(signal.get("fees"))
    return {
        "signal_id": signal["signal_id"],
        "pair": pair,
        "quote": quote,
        "side": signal.get("side"),
        "state": state,
        "exit_reason": reason,
        "entry_status": entry_status,
        "opened_at": _row({"t": opened})["t"] if opened else None,
        "closed_at": _row({"t": closed})["t"] if closed else None,
        "entry_qty": signal.get("entry_filled"),
        "entry_avg_px": _round_px(signal.get("entry_average_price")),
        "exit_qty": signal.get("exit_filled"),
        "exit_avg_px": _round_px(signal.get("exit_average_price")),
        "position": signal.get("position"),
        "realised_pnl": plain(pnl) if pnl is not None else None,
        "fees": plain(fees),
        "net_pnl": plain(pnl - fees) if pnl is not None else None,
        "legs": signal.get("legs"),
        "open_legs": signal.get("open_legs"),
    }


def _round_px(value: Any) -> str | None:
    """Average prices are exact quotients (28 digits); 12 significant decimals are plenty to read."""
    if value in (None, ""):
        return None
    return plain(round(Decimal(str(value)), 12))


def _profit_row(group: str, key: str, quote: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    nets = [_dec(m["net_pnl"]) for m in members]
    wins = sum(1 for n in nets if n > 0)
    losses = sum(1 for n in nets if n < 0)
    return {
        "group": group,
        "key": key,
        "quote": quote,
        "trades": len(members),
        "wins": wins,
        "losses": losses,
        "win_rate": f"{wins / len(members):.2f}" if members else None,
        "realised_pnl": plain(sum((_dec(m["realised_pnl"]) for m in members), Decimal(0))),
        "fees": plain(sum((_dec(m["fees"]) for m in members), Decimal(0))),
        "net_pnl": plain(sum(nets, Decimal(0))),
    }
