"""``execledger status``: the trading mode (who set it and why), open orders and positions, and the venue.

It reads the store (the trading state as saved, open orders and positions from the read models, caught up first)
and asks the service at ``EXECLEDGER_API_HOST``/``_PORT`` for ``GET /v1/health``; when no service answers, the
venue section says so instead of guessing.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import click

from execledger.infrastructure.cli.common import load, open_or_exit
from execledger.infrastructure.cli.reports import format_option, present_order
from execledger.infrastructure.health import stored_trading_state
from execledger.infrastructure.present import pair_name
from execledger.infrastructure.render import emit, json_default
from execledger.infrastructure.settings import Settings

HEALTH_TIMEOUT_S = 3.0


def service_health(settings: Settings) -> tuple[dict[str, Any] | None, str | None]:
    """(the service's health body, None) or (None, why it could not be read)."""
    host = settings.api_host if settings.api_host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    url = f"http://{host}:{settings.api_port}/v1/health"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HEALTH_TIMEOUT_S) as r:
            return json.loads(r.read()), None
    except urllib.error.HTTPError as exc:  # 503 still carries the body that says why
        try:
            return json.loads(exc.read()), None
        except ValueError:
            return None, f"{url} answered HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return None, f"no service answers at {url} ({type(exc).__name__})"


def register(main: click.Group) -> None:
    @main.command()
    @format_option
    def status(fmt, as_json):
        """Trading mode (who, why), open orders and positions, and the venue as the running service sees it."""
        fmt = "json" if as_json else fmt
        settings = load()
        with open_or_exit(settings) as lg:
            lg.projector.catch_up()
            state = stored_trading_state(lg.app)()
            pairs = lg.ledger.pairs
            live = [present_order(r, pairs) for r in lg.queries.live_orders()]
            positions = [{**p, "pair": pair_name(pairs, p["pair"])} for p in lg.queries.positions()]
        health, unreachable = service_health(settings)
        mode = {
            "mode": state.mode.value,
            "by": state.by,
            "why": state.why,
            "since": state.changed_at.isoformat() if state.changed_at else None,
        }
        if fmt == "json":
            doc: dict[str, Any] = {"trading": mode, "open_orders": live, "positions": positions, "service": health}
            if unreachable:
                doc["service_error"] = unreachable
            sys.stdout.write(json.dumps(doc, default=json_default) + "\n")
            return
        if fmt == "csv":  # one table per invocation: the open orders, the most scripted part
            emit(live, "csv", columns=[])
            return
        since = f" since {mode['since']}" if mode["since"] else ""
        click.echo(f"trading: {mode['mode']} (by {mode['by']}: {mode['why']}){since}")
        click.echo(_venue_line(health, unreachable))
        for problem in (health or {}).get("problems", []) + (health or {}).get("warnings", []):
            click.echo(f"  ! {problem}")
        click.echo("")
        emit(
            positions,
            "table",
            columns=["signal_id", "pair", "side", "position", "entry_avg_px", "open_legs", "realised_pnl", "fees"],
            title=f"open positions: {len(positions)}",
        )
        click.echo("")
        emit(
            live,
            "table",
            columns=["created_at", "signal_id", "role", "pair", "side", "type", "qty", "status", "filled_qty", "txid"],
            title=f"open orders: {len(live)}",
        )


def _venue_line(health: dict[str, Any] | None, unreachable: str | None) -> str:
    if health is None:
        return f"service: {unreachable}"
    venue = health.get("venue")
    head = f"service: {health.get('status')} (role {health.get('role')}, projection lag {health.get('projection_lag')})"
    if not venue:
        return head + "; venue: not known to this process (it does not trade)"
    stream = venue["stream"]
    dead = venue["deadman"]
    recon = venue["last_reconciliation"]
    return (
        f"{head}; venue: breaker {venue['breaker']}, stream "
        + ("connected" if stream["connected"] else "down")
        + (f" (last message {stream['last_message_age_s']:.0f}s ago)" if stream.get("last_message_age_s") else "")
        + (f", dead-man's switch fires in {dead['expires_in_s']:.0f}s" if dead.get("armed") else ", dead-man off")
        + (f", reconciled {recon['age_s']:.0f}s ago" if recon.get("age_s") is not None else "")
    )
