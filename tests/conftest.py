"""Shared fixtures: both event-store backends, the Kraken fixtures of ../shared, a manual clock."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from execledger.application.ledger import ExecutionLedger
from execledger.infrastructure.eventstore import open_orders_app, parse_postgres_url
from execledger.infrastructure.pairs import load_default_pairs
from execledger.infrastructure.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EXECLEDGER_SHARED_DIR", REPO.parent / "shared"))
FIXTURES = SHARED / "kraken" / "fixtures"
TEST_DATABASE_URL = os.environ.get("EXECLEDGER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def kraken_fixture(name: str) -> dict:
    """Load one JSON payload from ../shared/kraken/fixtures (the ground truth for Kraken's wire format)."""
    path = FIXTURES / name
    if not path.exists():
        pytest.fail(f"Kraken fixture {path} is missing: ../shared must sit beside the repository")
    return json.loads(path.read_text())


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    def set(self, at: datetime) -> None:
        self._now = at


def _postgres_reachable() -> str | None:
    """None if PostgreSQL answers, else the reason it does not."""
    import psycopg

    t = parse_postgres_url(TEST_DATABASE_URL)
    try:
        with psycopg.connect(
            host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password, connect_timeout=3
        ):
            return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()


_pg_state: dict[str, str | None] = {}


def require_postgres() -> None:
    """Skip (locally) or fail (CI=true) when the test database is not reachable."""
    if "reason" not in _pg_state:
        _pg_state["reason"] = _postgres_reachable()
    reason = _pg_state["reason"]
    if reason is None:
        return
    message = f"PostgreSQL at {parse_postgres_url(TEST_DATABASE_URL).redacted()} is not reachable ({reason})"
    if IN_CI:
        pytest.fail(message + "; in CI the database is required (.ci/run starts it)")
    pytest.skip(message + "; set EXECLEDGER_TEST_DATABASE_URL or start PostgreSQL")


def _drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    t = parse_postgres_url(TEST_DATABASE_URL)
    with psycopg.connect(
        host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password, autocommit=True
    ) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request, tmp_path, monkeypatch) -> Settings:
    """Settings for an isolated store: a fresh SQLite data dir, or a fresh PostgreSQL schema dropped afterwards."""
    for key in list(os.environ):
        if key.startswith("EXECLEDGER_") and key not in ("EXECLEDGER_TEST_DATABASE_URL", "EXECLEDGER_SHARED_DIR"):
            monkeypatch.delenv(key)
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data")
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in TEST_DATABASE_URL else "?"
    request.addfinalizer(lambda: _drop_schema(schema))
    return Settings(data_dir=tmp_path / "data", database_url=f"{TEST_DATABASE_URL}{sep}schema={schema}")


@pytest.fixture
def orders_app(settings):
    app = open_orders_app(settings)
    yield app
    app.close()


@pytest.fixture
def pairs():
    return load_default_pairs()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ledger(orders_app, pairs, clock) -> ExecutionLedger:
    return ExecutionLedger(orders_app, pairs, clock)
