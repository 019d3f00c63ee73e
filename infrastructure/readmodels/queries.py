"""Report queries over the read-model tables, with validated filters and offset pagination."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Engine, Table, and_, func, select

from execledger.domain.errors import FieldError
from execledger.domain.order import OrderStatus
from execledger.domain.pairs import PairRegistry
from execledger.domain.signal import SIGNAL_ID_PATTERN
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
    status: OrderStatus | None = None
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
    ) -> Page:
        conds = []
        c = table.c
        if f.signal_id is not None:
            conds.append(c.signal_id == f.signal_id)
        if f.pair is not None:
            conds.append(c[pair_col] == f.pair)
        if f.status is not None and status_col is not None:
            conds.append(c[status_col] == (f.status.value.upper() if status_upper else f.status.value))
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
        )

    def fills(self, f: ListFilter) -> Page:
        return self._page(
            t.fills,
            f,
            pair_col="pair",
            status_col=None,
            time_col="recorded_at",
            order_by=(t.fills.c.recorded_at, t.fills.c.trade_id),
        )

    def signals(self, f: ListFilter) -> Page:
        return self._page(
            t.signals,
            f,
            pair_col="pair",
            status_col=None,
            time_col="updated_at",
            order_by=(t.signals.c.updated_at, t.signals.c.signal_id),
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
