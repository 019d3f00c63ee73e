"""How read commands print: ``--format table|json|csv``, one line per row, never wrapped.

- ``table``: aligned columns, one line per row (like ``docker ps``). Piped or redirected, lines are written whole;
  on a terminal they are cropped to its width with ``…`` (``--format csv`` or ``json`` shows everything).
- ``json``: one document: ``{"items": [...], ...}`` with every field of every row.
- ``csv``: a header, then one record per row, every field (RFC 4180 quoting, by the csv module).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO

from execledger.domain.values import plain

FORMATS = ("table", "json", "csv")


def _fmt(value: Any) -> str:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) or "{}"
    return str(value)


def reason_text(reason: dict | None) -> str:
    """``[rule] text (what it saw)`` for one decision's reason."""
    if not reason:
        return ""
    seen = "; ".join(
        f"{k}={_fmt(v)}" for k, v in reason.items() if k not in ("rule", "text") and v not in (None, {}, "")
    )
    return f"[{reason.get('rule')}] {reason.get('text')}" + (f" ({seen})" if seen else "")


def cell(value: Any) -> str:
    """A table cell: no newlines (one row is one line), None as empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return when(value)
    return " ".join(_fmt(value).split())


def when(value: datetime | str | None) -> str:
    """``2026-12-01 00:40:20.123Z``: dated, UTC, milliseconds."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    text = value.isoformat(sep=" ", timespec="milliseconds")
    return text.replace("+00:00", "Z") if value.tzinfo else text + "Z"


def _is_time(column: str) -> bool:
    return column in ("at", "time") or column.endswith("_at")


def text_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """Aligned columns with a header; the last column is not padded; times are dated (UTC)."""
    cells = [[when(r.get(c)) if _is_time(c) and r.get(c) else cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = []
    for row in [list(columns), *cells]:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return lines


def _crop(lines: Iterable[str], out: TextIO) -> list[str]:
    if not (hasattr(out, "isatty") and out.isatty()):
        return list(lines)
    width = shutil.get_terminal_size().columns
    return [line if len(line) <= width else line[: width - 1] + "…" for line in lines]


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def emit(
    rows: Sequence[dict[str, Any]],
    fmt: str,
    *,
    columns: Sequence[str],
    title: str | None = None,
    extra: dict[str, Any] | None = None,
    footer: Sequence[str] = (),
    out: TextIO | None = None,
) -> None:
    """Print ``rows`` in ``fmt``. ``columns`` are the table's (json and csv carry every field); ``title`` and
    ``footer`` lines go with the table only; ``extra`` keys go into the JSON document beside ``items``."""
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps({"items": list(rows), **(extra or {})}, default=json_default) + "\n")
        return
    if fmt == "csv":
        fields: dict[str, None] = {}
        for r in rows:
            fields.update(dict.fromkeys(r))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(fields or dict.fromkeys(columns)), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {k: "" if v is None else json_default(v) if not isinstance(v, str) else v for k, v in r.items()}
            )
        out.write(buffer.getvalue())
        return
    if fmt != "table":
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    lines = ([title] if title else []) + (text_table(rows, columns) if rows else []) + list(footer)
    for line in _crop(lines, out):
        out.write(line + "\n")


# --- the demo's and audit's views ------------------------------------------------------------------------------


# What a fact or outcome shows when it carries no reason (a decision shows its reason).
_DETAIL_KEYS: tuple[str, ...] = (
    "txid",
    "trade_id",
    "quantity",
    "price",
    "fee",
    "error",
    "venue_reason",
    "source",
    "age_s",
    "threshold_s",
)
_DETAIL_KEYS += ("rule",)


def timeline_rows(orders: Sequence[Any], timeline: Sequence[Any], pairs: Any = None) -> list[dict[str, Any]]:
    """One row per recorded event of a signal (entry and legs): dated time, order, event, kind, rule, details."""
    roles = {o.id: o.role.value for o in orders}
    rows = []
    for item in timeline:
        h = item.entry
        why = h.reason or {}
        details = (
            reason_text(why)
            if why
            else ", ".join(f"{k}={_fmt(v)}" for k, v in h.data.items() if k in _DETAIL_KEYS and v not in (None, ""))
        )
        rows.append(
            {
                "at": h.timestamp,
                "order_id": str(item.order_id),
                "role": roles[item.order_id],
                "version": h.version,
                "event": h.name,
                "kind": h.kind.value,
                "rule": why.get("rule") or h.data.get("rule"),
                "details": details,
            }
        )
    return rows


TIMELINE_COLUMNS = ("at", "order", "event", "kind", "details")


def print_timeline_text(entry: Any, orders: Sequence[Any], timeline: Sequence[Any], out: TextIO | None = None) -> None:
    rows = timeline_rows(orders, timeline)
    shown = [{**r, "order": f"{r['role']} {r['order_id'][:8]}"} for r in rows]
    emit(
        shown,
        "table",
        columns=TIMELINE_COLUMNS,
        title=f"signal {entry.signal_id}: {len(orders)} orders, {len(timeline)} events (times UTC)",
        out=out,
    )


def _console_out(console: Any) -> TextIO:
    return getattr(console, "file", None) or sys.stdout


def print_rows(console: Any, title: str, rows: list[dict], columns: list[str]) -> None:
    """The demo's tables: the same unwrapped text table as ``--format table``."""
    emit(rows, "table", columns=columns, title=title, out=_console_out(console))


def print_timeline(console: Any, entry: Any, orders: Sequence[Any], timeline: Sequence[Any]) -> None:
    print_timeline_text(entry, orders, timeline, out=_console_out(console))
