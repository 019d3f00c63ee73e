"""Fault injection across process boundaries: the real service (``execledger run``) as an OS process trading against
a standalone simulator process (``execledger simulator``), so the venue's state survives the service being killed.

One *run*: random activity (signals, price moves, faults through ``/_sim/faults``, WS disconnects and stalls) while
a timer SIGKILLs the service at a random moment; the log and the venue are inspected to name what the kill hit;
the venue may move while the service is down; the service restarts (sometimes killed again during its start-up
recovery), settles with no faults, is stopped with SIGTERM, and the invariants of issue 8 are checked:

1. every order the venue knows is in the ledger and vice versa (cl_ord_id and txid);
2. filled quantities, trade ids, fees and statuses agree (and the venue's balances follow from the ledger's fills);
3. every AddOrder in the simulator's request log was decided (Submitted) in the ledger, and one cl_ord_id is sent
   again only after the venue certainly refused it (a NOT_EXECUTED answer the ledger recorded): never blindly
   (``tests/faults/resends.py``);
4. every open position has exactly its protective legs (live stop and take-profit quantities equal the position,
   by the one position rule of ``domain/position.py``);
5. the read models equal a rebuild from the log;
6. nothing is non-terminal (or in flight) in the ledger that the venue shows terminal;
7. no entry was sent while trading was halted or reducing (operator commands are issued at random moments: halt,
   resume, cancel an order, close a signal's position); exits and cancels always are;
8. no over-exit, and 9. no position left without a live exit order for longer than one retry interval while the
   service is up, under issue 13's faults (nonce and funds refusals, base fees, held requests, rule changes, wall
   clock steps): see ``tests/faults/protection.py``.

A *session* is one simulator and one fresh store (SQLite data dir, or a PostgreSQL schema); runs accumulate state
within it. The seed fixes every random choice (scenario, faults, kill delays); process timing is real, so a seed
reproduces the schedule, not the exact interleaving. Shared by ``tests/faults`` (CI) and ``bench/soak.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import aiohttp

from execledger.domain.order import State
from execledger.domain.position import exits_of, position_of, protection_gaps
from execledger.domain.trading_state import TRADING_STATE_ID
from execledger.domain.values import OrderRole, Side
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.eventstore import parse_postgres_url
from execledger.infrastructure.settings import Settings
from tests.faults.protection import ProtectionFaults
from tests.faults.resends import add_order_violations, fault_paths, recorded_attempts
from tests.test_projections import snapshot as dump_read_models  # every read-model row, by primary key

EXECLEDGER = str(Path(sys.executable).parent / "execledger")
PAIR = "XBT/USD"
PAIR_KEY = "XXBTZUSD"
START_PRICE = Decimal("67000")
FILL_FRACTIONS = "0.4,0.3"  # resting limits fill in increments: brackets per increment, OCO shrinking
SUBMIT_DEADLINE_S = (
    2.0  # short AddOrder deadline (Kraken's minimum): an unknown outcome is proven "not placed" within ~7 s
)
TRANSIENT = {"pending_submit", "submitting", "outcome_unknown", "cancel_pending"}
READS = ("QueryOrders", "OpenOrders", "ClosedOrders", "TradesHistory")
REST_FAULTS = ("http_502_before_execute", "http_502_after_execute", "service_unavailable", "delay_reply")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pick_fault(rng: random.Random) -> tuple[str, str, int, float]:
    """(method, kind, count, seconds): every fault kind of issue 8, on the calls where it matters. Counts stay
    within the adapter's retries for reads and cancels (4 attempts)."""
    roll = rng.random()
    if roll < 0.5:
        kind = rng.choice(
            (
                "delay_reply",
                "http_502_after_execute",
                "http_502_before_execute",
                "service_unavailable",
                "order_rate_limit",
                "api_rate_limit",
                "delayed_acceptance",
            )
        )
        seconds = round(rng.uniform(0.2, 1.2), 2) if kind in ("delay_reply", "delayed_acceptance") else 0.0
        return "AddOrder", kind, 1, seconds
    method = "CancelOrder" if roll < 0.7 else "GetWebSocketsToken" if roll < 0.75 else rng.choice(READS)
    kind = rng.choice((*REST_FAULTS, "api_rate_limit"))
    return method, kind, rng.randint(1, 2), round(rng.uniform(0.2, 1.0), 2) if kind == "delay_reply" else 0.0


# --- processes ---------------------------------------------------------------------------------------------------


class Process:
    """A child process with its output in a log file; never left running or unreaped."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.proc: subprocess.Popen | None = None
        self.killed = False  # SIGKILL sent: the process may take a moment to be gone

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.killed = True
            self.proc.kill()

    async def reap(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return await asyncio.to_thread(self.proc.wait, 5)

    async def terminate(self, timeout: float = 20.0) -> int | None:
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        return await self.reap(timeout)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def wait_until(probe, *, timeout: float, interval: float = 0.05, what: str, process: Process | None = None):
    """Poll ``probe()`` (an async callable returning a truthy value when done) across a process boundary."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive:
            raise RuntimeError(
                f"{process.name} exited ({process.proc.returncode}) while waiting for {what}:\n{process.tail()}"
            )
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
            value = await probe()
            if value:
                return value
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:g}s" + (f"\n{process.tail()}" if process else ""))


# --- the store ---------------------------------------------------------------------------------------------------


@dataclass
class Backend:
    """Where a session's ledger lives: ``sqlite`` (a data dir) or ``postgres`` (a fresh schema of ``database_url``)."""

    name: str = "sqlite"
    database_url: str | None = None

    @classmethod
    def from_env(cls) -> Backend:
        """``EXECLEDGER_FAULT_BACKEND=postgres`` (URL from ``EXECLEDGER_TEST_DATABASE_URL``) selects PostgreSQL."""
        name = os.environ.get("EXECLEDGER_FAULT_BACKEND", "sqlite")
        url = os.environ.get("EXECLEDGER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
        return cls(name, url if name == "postgres" else None)

    def settings(self, data_dir: Path) -> tuple[Settings, str | None]:
        """Settings of a fresh store, and the PostgreSQL schema to drop afterwards (None for SQLite)."""
        if self.name == "sqlite":
            return Settings(data_dir=data_dir), None
        schema = f"fault_{uuid.uuid4().hex[:12]}"
        sep = "&" if "?" in self.database_url else "?"
        return Settings(data_dir=data_dir, database_url=f"{self.database_url}{sep}schema={schema}"), schema

    def drop(self, schema: str | None) -> None:
        if schema is None:
            return
        import psycopg
        from psycopg import sql

        t = parse_postgres_url(self.database_url)
        with psycopg.connect(
            host=t.host,
            port=t.port,
            dbname=t.dbname,
            user=t.user,
            password=t.password,
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# --- results -----------------------------------------------------------------------------------------------------


def refused_by_market(answer: dict) -> bool:
    """A 422 whose every error is an sl/tp on the wrong side of the last price (``*_last_price_for_buy|sell``)."""
    rules = [e.get("rule", "") for e in answer.get("errors", [])]
    return bool(rules) and all("_last_price_for_" in rule for rule in rules)


@dataclass
class SoakResult:
    seed: int
    backend: str
    runs: int = 0
    sessions: int = 0
    kills: int = 0
    recovery_kills: int = 0
    kill_phases: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    faults_by_method: Counter = field(default_factory=Counter)
    ws_actions: Counter = field(default_factory=Counter)
    commands: Counter = field(default_factory=Counter)  # operator commands issued, by kind and HTTP status
    signals: int = 0
    # signals refused 422 because an sl/tp was on the wrong side of the venue's last price: the generator draws
    # them around the harness's mark, which can lag the price the service saw (a fill, a tick)
    refused_by_market: int = 0
    orders_checked: int = 0
    venue_moves_while_down: int = 0
    settle_timeouts: int = 0
    naked_max_s: float = 0.0  # the longest a position went without a live exit order while the service was up
    oco_races: set[str] = field(default_factory=set)  # a sibling filled before its OCO cancel reached the venue
    violations: list[str] = field(default_factory=list)
    outage: Counter = field(default_factory=Counter)  # venue outages (tests/faults/outages.py): counts and seconds
    outage_max: dict[str, float] = field(default_factory=dict)  # worst health latency, events per order, ...
    seconds: float = 0.0
    phase_seconds: Counter = field(default_factory=Counter)  # where the wall time went

    @contextlib.contextmanager
    def timed(self, phase: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.phase_seconds[phase] += time.monotonic() - started

    def as_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "backend": self.backend,
            "runs": self.runs,
            "sessions": self.sessions,
            "kills": self.kills,
            "recovery_kills": self.recovery_kills,
            "kill_phases": dict(sorted(self.kill_phases.items())),
            "faults_injected": sum(self.faults.values()),
            "faults_by_kind": dict(sorted(self.faults.items())),
            "faults_by_method": dict(sorted(self.faults_by_method.items())),
            "ws_actions": dict(sorted(self.ws_actions.items())),
            "operator_commands": dict(sorted(self.commands.items())),
            "signals": self.signals,
            "orders_checked": self.orders_checked,
            "venue_moves_while_service_down": self.venue_moves_while_down,
            "settle_timeouts": self.settle_timeouts,
            "naked_max_s": round(self.naked_max_s, 3),
            "oco_races_both_legs_filled": len(self.oco_races),
            "oco_races": sorted(self.oco_races)[:20],
            "outages": {k: round(v, 1) for k, v in sorted(self.outage.items())},
            "outage_worst": {k: round(v, 3) for k, v in sorted(self.outage_max.items())},
            "violations_found": len(self.violations),
            "violations": self.violations[:50],
            "seconds": round(self.seconds, 1),
            "phase_seconds": {k: round(v, 1) for k, v in sorted(self.phase_seconds.items())},
        }

    def summary(self) -> str:
        return (
            f"soak seed={self.seed} backend={self.backend}: {self.runs} runs, {self.kills} kills "
            f"({self.recovery_kills} during recovery), {sum(self.faults.values())} faults, {self.signals} signals, "
            f"{sum(self.commands.values())} operator commands, "
            f"{self.orders_checked} order checks, longest naked position {self.naked_max_s:.1f}s, "
            f"{len(self.violations)} violations in {self.seconds:.0f}s"
            + (
                f"; {self.outage['runs']} venue outages ({self.outage['seconds_breaker_open']:.0f}s with the "
                f"breaker open, {self.outage['signals_posted']} signals posted during them)"
                if self.outage
                else ""
            )
        )


# --- one session -------------------------------------------------------------------------------------------------


class Session:
    """One simulator process, one store, and the service process restarted over and over against them."""

    def __init__(self, work_dir: Path, backend: Backend, seed: int, result: SoakResult):
        self.work_dir, self.backend, self.seed, self.result = work_dir, backend, seed, result
        self.settings, self.schema = backend.settings(work_dir / "data")
        self.key = "fault-suite-key"
        self.secret = base64.b64encode(random.Random(seed).randbytes(64)).decode()
        self.sim_port = free_port()
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.sim = Process(
            "simulator",
            [
                EXECLEDGER,
                "simulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.sim_port),
                "--key",
                self.key,
                "--secret",
                self.secret,
                "--seed",
                str(seed),
                "--fill-fractions",
                FILL_FRACTIONS,
                "--tier",
                "none",  # the venue refuses nothing for rate; the service's adapter still models Starter
            ],
            self._env(),
            work_dir / "simulator.log",
        )
        self.service: Process | None = None
        self.api_url = ""
        self.http: aiohttp.ClientSession | None = None
        self.mark = START_PRICE
        self.initial_balances: dict[str, Decimal] = {}
        self.unanswered: dict[str, dict] = {}  # signals whose POST got no answer (the service died meanwhile)
        self.signal_no = 0
        self.stalled = False
        self.recovered = False
        self.stopped_at = datetime.now(UTC)  # when the service was last stopped for a check
        self.protection = ProtectionFaults(self)  # issue 13's faults and invariants 8-9

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
        return {**env, **extra}

    def _service_env(self, port: int) -> dict[str, str]:
        extra = {
            "EXECLEDGER_DATA_DIR": str(self.settings.data_dir),
            "EXECLEDGER_KRAKEN_URL": self.sim_url,
            "EXECLEDGER_KRAKEN_WS_URL": f"ws://127.0.0.1:{self.sim_port}/v2",
            "EXECLEDGER_KRAKEN_KEY": self.key,
            "EXECLEDGER_KRAKEN_SECRET": self.secret,
            "EXECLEDGER_KRAKEN_TIER": "none",
            "EXECLEDGER_API_PORT": str(port),
            "EXECLEDGER_SUBMIT_DEADLINE_S": str(SUBMIT_DEADLINE_S),
        }
        extra |= self.protection.service_env()
        if self.settings.database_url is not None:
            extra["EXECLEDGER_DATABASE_URL"] = self.settings.database_url.get_secret_value()
        return self._env(**extra)

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Session:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.sim.start()
        await wait_until(
            lambda: self._get(f"{self.sim_url}/_sim/faults", ok_only=True),
            timeout=30,
            what="simulator ready",
            process=self.sim,
        )
        self.initial_balances = {a: Decimal(v) for a, v in (await self.sim_get("balances")).items()}
        await self.start_service()
        self.result.sessions += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in (self.service, self.sim):
            if proc is not None:
                proc.kill()
                await proc.reap()
        if self.http is not None:
            await self.http.close()
        self.backend.drop(self.schema)

    async def start_service(self, *, wait_recovered: bool = True) -> None:
        with self.result.timed("start"):
            await self._start_service(wait_recovered)

    async def _start_service(self, wait_recovered: bool) -> None:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.service = Process("service", [EXECLEDGER, "run"], self._service_env(port), self.work_dir / "service.log")
        self.service.start()
        self.stalled = self.recovered = False

        async def ready():
            health = await self._get(f"{self.api_url}/v1/health", accept=(200, 503))  # 503: up, cannot trade yet
            if health is None:
                return False
            self.recovered = health["trading"].get("recovered", True)
            return self.recovered or not wait_recovered

        await wait_until(ready, timeout=60, what="service health", process=self.service)
        if self.recovered:
            self.protection.service_up()

    # -- HTTP -------------------------------------------------------------------------------------------------

    async def _get(self, url: str, ok_only: bool = False, accept: tuple[int, ...] = (200,)) -> Any:
        async with self.http.get(url) as r:
            if r.status not in accept:
                return None
            return True if ok_only else await r.json()

    async def sim_get(self, path: str) -> Any:
        async with self.http.get(f"{self.sim_url}/_sim/{path}") as r:
            r.raise_for_status()
            return await r.json()

    async def sim_post(self, path: str, body: dict | None = None) -> Any:
        async with self.http.post(f"{self.sim_url}/_sim/{path}", json=body) as r:
            r.raise_for_status()
            return await r.json()

    async def inject_write_fault(self, method: str, kind: str, count: int = 1, seconds: float = 0.0) -> None:
        """A fault on the REST write ``method`` and, where the simulator has it there too, on its WS v2 twin
        (``resends.fault_paths``): the next write meets it on whichever route it takes."""
        for path in fault_paths(method, kind):
            await self.sim_post("faults", {"path": path, "kind": kind, "count": count, "seconds": seconds})

    async def order_calls(self) -> list[dict]:
        """Every order the venue received, on either route (WS v2 add_order, REST AddOrder), in arrival order."""
        calls = [*await self.sim_get("requests?method=add_order"), *await self.sim_get("requests?method=AddOrder")]
        return sorted(calls, key=lambda c: c["time"])

    async def api_orders(self) -> list[dict]:
        items, offset = [], 0
        while offset is not None:
            async with self.http.get(f"{self.api_url}/v1/orders", params={"limit": "1000", "offset": str(offset)}) as r:
                r.raise_for_status()
                page = await r.json()
            items += page["items"]
            offset = page["next_offset"]
        return items

    # -- activity ---------------------------------------------------------------------------------------------

    def _price(self, value: Decimal) -> str:
        return f"{value:.1f}"

    def new_signal(self, rng: random.Random) -> dict:
        self.signal_no += 1
        side = rng.choice(("buy", "sell"))
        up = 1 if side == "buy" else -1
        body: dict[str, Any] = {
            "signal_id": f"s{self.seed}-{self.signal_no}",
            "pair": PAIR,
            "side": side,
            "quantity": rng.choice(("0.002", "0.004", "0.01")),
        }
        if rng.random() < 0.4:
            body["order_type"], ref = "market", self.mark
        else:
            offset = Decimal(str(round(rng.uniform(-0.004, 0.002), 5)))
            ref = self.mark * (1 - up * offset)
            body |= {
                "order_type": "limit",
                "limit_price": self._price(ref),
                "timeout_s": round(rng.uniform(0.5, 2.5), 2),
            }
            ref = Decimal(body["limit_price"])
        legs = rng.random()
        if legs < 0.8:
            body["sl_price"] = self._price(ref * (1 - up * Decimal(str(round(rng.uniform(0.006, 0.02), 4)))))
        if legs < 0.7 or legs >= 0.9:
            body["tp_price"] = self._price(ref * (1 + up * Decimal(str(round(rng.uniform(0.006, 0.02), 4)))))
        return body

    async def post_signal(self, body: dict) -> None:
        """POST a signal as the trading system would: 201/200 placed; 423 refused while halted (not an error); 202
        or 503 (the trading process did not confirm: it died meanwhile) keep it for a retry at settling."""
        self.unanswered[body["signal_id"]] = body
        async with self.http.post(f"{self.api_url}/v1/signals", json=body) as r:
            if r.status in (202, 503):
                return
            if r.status == 422 and refused_by_market(await r.json()):
                self.unanswered.pop(body["signal_id"])
                self.result.refused_by_market += 1
                return
            if r.status not in (200, 201, 423):
                raise AssertionError(f"POST /v1/signals {body['signal_id']}: {r.status} {await r.text()}")
        self.unanswered.pop(body["signal_id"])
        self.result.signals += r.status != 423

    async def operator_command(self, rng: random.Random) -> None:
        """An operator's command at a random moment: halt (sometimes canceling entries, sometimes reduce-only),
        resume, cancel a working entry, or close a signal's position."""
        roll = rng.random()
        if roll < 0.3:
            path, body = (
                "/v1/trading/halt",
                {
                    "reason": "fault suite",
                    "by": "ops",
                    "cancel_entries": rng.random() < 0.5,
                    "reducing": rng.random() < 0.3,
                },
            )
        elif roll < 0.6:
            path, body = "/v1/trading/resume", {"reason": "fault suite", "by": "ops"}
        else:
            orders = await self.api_orders()
            if roll < 0.8:
                working = [o for o in orders if o["role"] == "entry" and o["status"] in ("open", "partially_filled")]
                if not working:
                    return
                path = f"/v1/orders/{rng.choice(working)['order_id']}/cancel"
            else:
                held = [o for o in orders if o["role"] == "entry" and o["filled_quantity"] not in ("0", None)]
                if not held:
                    return
                path = f"/v1/signals/{rng.choice(held)['signal_id']}/close"
            body = {"reason": "fault suite", "by": "ops"}
        async with self.http.post(f"{self.api_url}{path}", json=body) as r:
            if r.status >= 500 and r.status != 503:
                raise AssertionError(f"POST {path}: {r.status} {await r.text()}")
            self.result.commands[f"{path.rsplit('/', 1)[-1]} {r.status}"] += 1

    async def move_price(self, rng: random.Random) -> None:
        if rng.random() < 0.3:
            marks = (await self.sim_post("advance", {"pair": PAIR, "steps": rng.randint(1, 20)}))["marks"]
        else:
            target = START_PRICE * (1 + Decimal(str(round(rng.gauss(0, 0.012), 5))))
            marks = (await self.sim_post("price", {"pair": PAIR, "price": self._price(target)}))["marks"]
        self.mark = Decimal(marks[PAIR_KEY])

    async def inject_fault(self, rng: random.Random) -> None:
        method, kind, count, seconds = pick_fault(rng)
        await self.inject_write_fault(method, kind, count, seconds)
        self.result.faults[kind] += count
        self.result.faults_by_method[method] += count

    async def ws_fault(self, rng: random.Random) -> None:
        action = rng.choice(("disconnect", "stall", "resume") if self.stalled else ("disconnect", "stall"))
        await self.sim_post(f"ws/{action}")
        self.stalled = (action == "stall") or (self.stalled and action == "disconnect")
        self.result.ws_actions[action] += 1

    async def activity(self, rng: random.Random, duration: float) -> None:
        """Random actions for ``duration`` seconds, or until the service dies (the kill timer)."""
        end = time.monotonic() + duration
        while time.monotonic() < end and self.service.alive and not self.service.killed:
            roll = rng.random()
            try:
                if roll < 0.32:
                    await self.post_signal(self.new_signal(rng))
                elif roll < 0.55:
                    await self.move_price(rng)
                elif roll < 0.68:
                    await self.inject_fault(rng)
                elif roll < 0.82:
                    await self.protection.inject(rng)
                elif roll < 0.92:
                    await self.ws_fault(rng)
                else:
                    await self.operator_command(rng)
            except (TimeoutError, aiohttp.ClientError):
                if not self.service.killed:
                    raise
            await asyncio.sleep(rng.uniform(0.02, 0.25))  # scenario pacing, not synchronisation

    # -- kills ------------------------------------------------------------------------------------------------

    async def kill_phase(self) -> set[str]:
        """What the SIGKILL interrupted, read from the log, the read models and the venue."""
        venue = {o["cl_ord_id"]: o for o in await self.sim_get("history")}
        return await asyncio.to_thread(self._interrupted, venue) or {"idle"}

    def _interrupted(self, venue: dict[str, dict]) -> set[str]:
        tags: set[str] = set()
        with open_ledger(self.settings) as lg:
            lg.engine.load()
            if lg.projector.lag() > 0:
                tags.add("projection_update")
            for o in lg.engine.orders.values():
                leg = o.parent_id is not None
                if o.state is State.SUBMITTING:
                    tags.add("submission")
                elif o.state is State.PENDING_SUBMIT:
                    tags.add("bracket_not_sent" if leg else "entry_not_sent")
                elif o.state is State.OUTCOME_UNKNOWN:
                    tags.add("outcome_unknown")
                elif o.state is State.CANCEL_PENDING:
                    tags.add("cancel")
                if (
                    o.role is OrderRole.ENTRY
                    and (o.sl_price or o.tp_price)
                    and o.filled_quantity > o.bracketed_quantity
                ):
                    tags.add("fill_before_bracket")
                v = venue.get(o.cl_ord_id)
                if v is not None and (Decimal(v["vol_exec"]) > o.filled_quantity or o.txid is None):
                    tags.add("venue_ahead_of_ledger")
        return tags

    async def kill_at_random(self, rng: random.Random, window: float) -> None:
        delay = rng.uniform(0.05, window)
        timer = asyncio.get_running_loop().call_later(delay, self._kill)
        try:
            await self.activity(rng, window + 1)
        finally:
            timer.cancel()
        self._kill()
        await self.service.reap()
        self.result.kills += 1
        with self.result.timed("classify"):
            self.result.kill_phases.update(await self.kill_phase())

    def _kill(self) -> None:
        self.service.kill()
        self.protection.service_down()

    async def kill_during_recovery(self, rng: random.Random) -> None:
        await self.start_service(wait_recovered=False)
        await asyncio.sleep(rng.uniform(0.0, 0.3))  # a random moment of start-up recovery
        recovering = not self.recovered
        self.service.kill()
        await self.service.reap()
        self.result.kills += 1
        self.result.recovery_kills += 1
        phases = await self.kill_phase()
        self.result.kill_phases.update(phases | ({"recovery"} if recovering else set()))

    # -- settling and checking ----------------------------------------------------------------------------------

    async def snapshot(self) -> tuple | None:
        """A comparable view of both sides, or None while they disagree (or something is in flight)."""
        health = await self._get(f"{self.api_url}/v1/health", accept=(200, 503))
        if not health or health["projection_lag"] != 0 or not health["trading"].get("recovered", True):
            return None
        ours = await self.api_orders()
        venue = await self.sim_get("history")
        if any(o["status"] in TRANSIENT for o in ours):
            return None
        if any(o["role"] == "entry" and o["status"] in ("open", "partially_filled") for o in ours):
            return None  # limit entries still waiting for their timeout
        by_cl = {o["cl_ord_id"]: o for o in ours}
        for v in venue:
            o = by_cl.get(v["cl_ord_id"])
            if o is None or o["txid"] != v["txid"] or Decimal(o["filled_quantity"]) != Decimal(v["vol_exec"]):
                return None
            if (v["status"] in ("pending", "open")) != (o["status"] in ("open", "partially_filled")):
                return None
        if sum(1 for o in ours if o["txid"]) != len(venue):
            return None
        return tuple(sorted((o["order_id"], o["status"], o["filled_quantity"], o["version"]) for o in ours))

    async def settle(self, timeout: float = 30.0) -> bool:
        """No more faults; run until ledger and venue agree and stay agreed (bounded)."""
        await self._clear_faults()
        await self.protection.restore()
        if self.stalled:
            # A stall loses messages silently; the client finds out at its next gap, watchdog or periodic check
            # (up to a minute): a reconnect makes it resync now.
            await self.sim_post("ws/resume")
            await self.sim_post("ws/disconnect")
            self.stalled = False
        for body in list(self.unanswered.values()):
            await self.post_signal(body)  # the trading system retries what got no answer (idempotent by id)
        self.unanswered.clear()  # still unconfirmed now: the trading process is down, the check tells the rest
        previous = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.service.alive:
                return False
            current = await self.snapshot()
            if current is not None and current == previous:
                return True
            previous = current
            await asyncio.sleep(0.2)
        self.result.settle_timeouts += 1
        return False

    async def _clear_faults(self) -> None:
        async with self.http.delete(f"{self.sim_url}/_sim/faults") as r:
            r.raise_for_status()

    async def check(self, run: str) -> list[str]:
        """The six invariants, on the stopped service's store and the simulator's books."""
        venue = await self.sim_get("history")
        balances = {a: Decimal(v) for a, v in (await self.sim_get("balances")).items()}
        adds = await self.order_calls()
        found: list[str] = []

        def bad(n, text):
            return found.append(f"[{run}] invariant {n}: {text}")

        await asyncio.to_thread(self._check_store, venue, balances, adds, bad)
        return found

    def _check_store(self, venue: list[dict], balances: dict[str, Decimal], adds: list[dict], bad) -> None:
        with open_ledger(self.settings) as lg:
            engine = lg.engine
            engine.load()
            orders = list(lg.ledger.load_orders(everything=True))  # retired signals too: every order is checked
            self.result.orders_checked += len(orders)
            ours = {o.cl_ord_id: o for o in orders}
            for text in add_order_violations(
                adds, lambda cl: recorded_attempts(lg.ledger.order_history(ours[cl].id)) if cl in ours else None
            ):
                bad(3, text)
            for v in venue:
                o = ours.get(v["cl_ord_id"])
                if o is None:
                    bad(1, f"venue order {v['txid']} ({v['cl_ord_id']}) is not in the ledger")
                    continue
                what = f"{o.role.value} {o.signal_id} {v['txid']}"
                if o.txid != v["txid"]:
                    bad(1, f"{what}: ledger txid {o.txid}")
                if o.filled_quantity != Decimal(v["vol_exec"]) or set(o.fills) != set(v["trades"]):
                    bad(
                        2,
                        f"{what}: filled {o.filled_quantity} ({len(o.fills)} fills) vs venue {v['vol_exec']} "
                        f"({len(v['trades'])} trades)",
                    )
                if o.fees != Decimal(v["fee"]):
                    bad(2, f"{what}: fees {o.fees} vs venue {v['fee']}")
                expected = {
                    "pending": None,
                    "open": None,
                    "closed": State.FILLED,
                    "canceled": State.CANCELED,
                    "expired": State.EXPIRED,
                }[v["status"]]
                if expected is None and o.is_terminal:
                    bad(2, f"{what}: ledger {o.state.value}, venue {v['status']}")
                elif (
                    expected is not None
                    and o.state is not expected
                    and not (v["status"] == "closed" and o.state is State.CANCELED and o.filled_quantity < o.quantity)
                ):
                    bad(6, f"{what}: ledger {o.state.value}, venue {v['status']}")
            known = {v["cl_ord_id"] for v in venue}
            for o in orders:
                if o.txid and o.cl_ord_id not in known:
                    bad(1, f"{o.role.value} {o.signal_id} {o.txid}: in the ledger, not on the venue")
                if o.state.value in TRANSIENT:
                    bad(6, f"{o.role.value} {o.signal_id} ({o.cl_ord_id}) still {o.state.value} after settling")
            self._check_balances(engine, orders, balances, bad)
            self._check_legs(engine, orders, bad)
            self.protection.check(lg, engine, orders, bad, self.stopped_at)
            self._check_halts(lg, orders, bad)
            self._check_projections(lg, bad)

    def _check_balances(self, engine, orders, balances: dict[str, Decimal], bad) -> None:
        expected = dict(self.initial_balances)
        for order in orders:
            rules = engine.contingencies.rules(order)
            sign = 1 if order.side is Side.BUY else -1
            for fill in order.fills.values():
                expected[rules.base] = expected.get(rules.base, Decimal(0)) + sign * fill.quantity
                # The venue moves the trade's cost rounded to the pair's cost_decimals (Kraken's trade ``cost``).
                cost = (fill.quantity * fill.price).quantize(Decimal(1).scaleb(-rules.cost_decimals), ROUND_HALF_UP)
                expected[rules.quote] = expected.get(rules.quote, Decimal(0)) - sign * cost
                fee_asset = fill.fee_asset or rules.quote  # a fee charged in the base (fcib) is not in the quote
                expected[fee_asset] = expected.get(fee_asset, Decimal(0)) - fill.fee
        for asset, amount in expected.items():
            if balances.get(asset, Decimal(0)) != amount:
                bad(2, f"balance {asset}: venue {balances.get(asset)} vs ledger fills {amount}")

    def _check_legs(self, engine, orders, bad) -> None:
        by_id = {o.id: o for o in orders}
        for entry in (o for o in orders if o.role is OrderRole.ENTRY):
            rules = engine.contingencies.rules(entry)
            position = position_of(entry, by_id, rules.base)
            raced = position.net < 0 and any(
                o.state is State.FILLED and o.cancel_requested for o in exits_of(entry, by_id)
            )
            if raced:
                # Both legs filled before the sibling's cancel reached the venue (the service was down, or the
                # cancel was failing): a venue fact the ledger must record, counted as a race, not a violation.
                self.result.oco_races.add(f"signal {entry.signal_id}: over-exited by {-position.net}")
                continue
            for gap in protection_gaps(entry, by_id, rules.base, rules.ordermin):
                bad(4, gap)

    def _check_halts(self, lg, orders, bad) -> None:
        """Invariant 7: no entry's AddOrder was decided (Submitted) while trading was halted or reducing."""
        changes = [
            (ev.at, ev.mode) for ev in lg.app.repository.event_store.get(TRADING_STATE_ID) if hasattr(ev, "mode")
        ]
        if not changes:
            return
        for order in (o for o in orders if o.role is OrderRole.ENTRY):
            for h in lg.ledger.order_history(order.id):
                if h.name != "Submitted":
                    continue
                at = h.data["at"]
                mode = next((m for when, m in reversed(changes) if when <= at), "running")
                if mode != "running":
                    bad(7, f"entry {order.signal_id} was sent at {at.isoformat()} while trading was {mode}")

    def _check_projections(self, lg, bad) -> None:
        lg.projector.catch_up()  # what the follower would do next; the tail it missed at the stop is no error
        live = dump_read_models(lg.db)
        lg.projector.rebuild()
        rebuilt = dump_read_models(lg.db)
        for name in live:
            if live[name] != rebuilt[name]:
                diff = next((a, b) for a, b in zip(live[name] + [None], rebuilt[name] + [None], strict=False) if a != b)
                bad(
                    5,
                    f"read model {name} differs from a rebuild ({len(live[name])} vs {len(rebuilt[name])} rows; "
                    f"first difference {diff})",
                )

    # -- a run --------------------------------------------------------------------------------------------------

    async def run(self, rng: random.Random, label: str, *, last: bool) -> list[str]:
        """One kill/restart run; returns the invariant violations found after it."""
        problems: list[str] = []
        await self.kill_at_random(rng, window=rng.uniform(0.5, 3.0))
        if rng.random() < 0.5:  # the venue moves on while the service is down: fills it must learn at restart
            await self.move_price(rng)
            self.result.venue_moves_while_down += 1
        if rng.random() < 0.2:
            await self.kill_during_recovery(rng)
        await self.start_service()
        if rng.random() < 0.5:
            await self.activity(rng, rng.uniform(0.2, 1.0))
        if not self.service.alive:
            problems.append(f"[{label}] the service died on its own:\n{self.service.tail()}")
        with self.result.timed("settle"):
            settled = await self.settle()
        with self.result.timed("stop"):
            self.protection.service_down()
            code = await self.service.terminate()
            self.stopped_at = datetime.now(UTC)
        if code != 0:
            problems.append(f"[{label}] the service exited with {code} on SIGTERM:\n{self.service.tail()}")
        with self.result.timed("check"):
            problems += await self.check(label)
        if problems and not settled:
            problems.append(f"[{label}] (ledger and venue did not settle within the bound)")
        self.result.runs += 1
        if not last:
            await self.start_service()
        return problems


async def soak(
    *,
    runs: int,
    seed: int,
    work_dir: Path,
    backend: Backend | None = None,
    runs_per_session: int = 5,
    parallel: int = 2,
    outages: float = 0.0,
    on_run=None,
) -> SoakResult:
    """``runs`` kill/restart runs in sessions of ``runs_per_session``, ``parallel`` sessions at a time (each session
    is its own simulator, store and service; their seeds do not depend on the scheduling). Every violation is
    collected; none stops the soak.

    ``outages`` > 0: the service reaches the venue through a link the harness can cut, and that share of the runs
    are venue outages longer than the breaker's open time with bursts of signals (``tests/faults/outages.py``);
    which runs they are is drawn apart from the other choices, so ``outages=0`` keeps every seed's schedule."""
    from tests.faults.outages import OutageSession

    backend = backend or Backend()
    result = SoakResult(seed=seed, backend=backend.name)
    started = time.monotonic()
    plan = [(no + 1, min(runs_per_session, runs - start)) for no, start in enumerate(range(0, runs, runs_per_session))]

    async def worker() -> None:
        while plan:
            session_no, n = plan.pop(0)
            await _session(session_no, n)

    async def _session(session_no: int, n: int) -> None:
        session_dir = work_dir / f"session-{session_no}"
        session_dir.mkdir(parents=True, exist_ok=True)
        kind = OutageSession if outages > 0 else Session
        async with kind(session_dir, backend, seed * 1000 + session_no, result) as session:
            for i in range(n):
                label = f"seed {seed} session {session_no} run {i + 1}"
                rng = random.Random(f"{seed}:{session_no}:{i}")
                outage = outages > 0 and random.Random(f"{seed}:{session_no}:{i}:outage").random() < outages
                run = session.outage_run if outage else session.run
                try:
                    problems = await run(rng, label + (" (venue outage)" if outage else ""), last=i == n - 1)
                except Exception as exc:
                    result.runs += 1
                    result.violations.append(
                        f"[{label}] run failed: {type(exc).__name__}: {exc}\n"
                        f"{session.service.tail() if session.service else ''}"
                    )
                    return  # the session's processes are in an unknown state: the next session starts fresh
                result.violations += problems
                if on_run is not None:
                    on_run(label, problems)

    await asyncio.gather(*(worker() for _ in range(max(1, parallel))))
    result.seconds = time.monotonic() - started
    return result
