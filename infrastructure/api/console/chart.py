"""A signal's fills against the price, as inline SVG rendered on the server (no script, no chart library).

Shapes: ``fills`` are ``Point(at, price, label, kind)`` (kind = the order's role: ``entry``, ``stop_loss``,
``take_profit``, ``exit``); ``levels`` are ``Level(label, price, kind)`` drawn as dashed horizontal lines (the
entry's limit, the stop's and the take-profit's triggers); ``prices`` are the public last-trade prices this
process observed (``marks.py``), drawn as a line. Prices are decimals in the quote currency, times UTC. Geometry
uses floats; every number shown as text is the exact decimal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from markupsafe import Markup, escape

from execledger.domain.values import plain

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 78, 92, 14, 26  # margins: price labels left, level labels right, time labels below


@dataclass(frozen=True)
class Point:
    at: datetime
    price: Decimal
    label: str
    kind: str


@dataclass(frozen=True)
class Level:
    label: str
    price: Decimal
    kind: str


def _hhmmss(at: datetime) -> str:
    return at.strftime("%H:%M:%S")


def fill_chart(fills: Sequence[Point], levels: Sequence[Level], prices: Sequence[Point], now: datetime) -> Markup:
    """The ``<svg id="fill-chart">`` element; an empty-state text when there is nothing to draw."""
    values = [p.price for p in (*fills, *prices)] + [lv.price for lv in levels]
    times = [p.at for p in (*fills, *prices)]
    if not values:
        return Markup('<p class="empty" id="fill-chart">nothing to chart yet: no fill, price or level</p>')
    low, high = float(min(values)), float(max(values))
    pad = (high - low) * 0.08 or abs(high) * 0.01 or 1.0
    low, high = low - pad, high + pad
    start = min(times, default=now)
    end = max([*times, now]) if times else now
    if end - start < timedelta(seconds=60):
        start = end - timedelta(seconds=60)
    span = (end - start).total_seconds()
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        return LEFT + plot_w * (at - start).total_seconds() / span

    def y(price: Decimal) -> float:
        return TOP + plot_h * (high - float(price)) / (high - low)

    parts = [
        f'<svg id="fill-chart" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="fills against the price" xmlns="http://www.w3.org/2000/svg">',
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for value in (Decimal(repr(high - pad)), Decimal(repr(low + pad))):
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
            f"{escape(plain(round(value, 8)))}</text>"
        )
    parts.append(f'<text class="axis" x="{LEFT}" y="{HEIGHT - 8}">{_hhmmss(start)}</text>')
    parts.append(f'<text class="axis" x="{LEFT + plot_w}" y="{HEIGHT - 8}" text-anchor="end">{_hhmmss(end)} UTC</text>')
    for level in levels:
        ly = y(level.price)
        parts.append(
            f'<line class="level {escape(level.kind)}" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ly:.1f}" y2="{ly:.1f}"/>'
            f'<text class="level-label {escape(level.kind)}" x="{LEFT + plot_w + 4}" y="{ly + 4:.1f}">'
            f"{escape(level.label)} {escape(plain(level.price))}</text>"
        )
    if prices:
        line = " ".join(f"{x(p.at):.1f},{y(p.price):.1f}" for p in sorted(prices, key=lambda p: p.at))
        parts.append(f'<polyline class="price" points="{line}"><title>last trade price</title></polyline>')
    for p in fills:
        parts.append(
            f'<circle class="fill {escape(p.kind)}" cx="{x(p.at):.1f}" cy="{y(p.price):.1f}" r="5" '
            f'data-price="{escape(plain(p.price))}"><title>{escape(p.label)}</title></circle>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
