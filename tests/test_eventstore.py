"""Event store selection: SQLite file per app in WAL mode by default; PostgreSQL by URL; secrets redacted."""

import sqlite3

import pytest

from execledger.infrastructure.eventstore import StoreConfigError, app_env, open_orders_app, parse_postgres_url
from execledger.infrastructure.settings import Settings


def test_sqlite_default_is_one_wal_file_per_app(tmp_path):
    settings = Settings(data_dir=tmp_path / "d")
    env = app_env(settings, "Orders")
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert env["ORDERS_SQLITE_DBNAME"] == str(tmp_path / "d" / "orders.sqlite")
    assert app_env(settings, "Reports")["REPORTS_SQLITE_DBNAME"] != env["ORDERS_SQLITE_DBNAME"]
    app = open_orders_app(settings)
    app.close()
    with sqlite3.connect(tmp_path / "d" / "orders.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_postgres_url_parsing_and_redaction():
    t = parse_postgres_url("postgresql://trader:s3cr%40t@db.example:6543/ledger?schema=live_1")
    assert (t.host, t.port, t.dbname, t.user, t.password, t.schema) == (
        "db.example",
        6543,
        "ledger",
        "trader",
        "s3cr@t",
        "live_1",
    )
    assert "s3cr" not in t.redacted() and "***" in t.redacted()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://u@h/db", "scheme"),
        ("postgresql://u@h", "no database"),
        ("postgresql://u@h/db?schema=a;drop", "schema"),
    ],
)
def test_bad_postgres_urls_are_clear_errors(url, match):
    with pytest.raises(StoreConfigError, match=match):
        parse_postgres_url(url)


def test_settings_never_show_secrets(monkeypatch):
    monkeypatch.setenv(
        "EXECLEDGER_KRAKEN_SECRET",
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==",
    )
    monkeypatch.setenv("EXECLEDGER_DATABASE_URL", "postgresql://u:hunter2@h/db")
    s = Settings()
    assert "kQH5HW" not in repr(s) and "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    assert s.backend == "postgres"


def test_pool_sizes_reach_the_event_store_env(monkeypatch):
    from execledger.infrastructure import eventstore

    monkeypatch.setattr(eventstore, "prepare_database", lambda target: None)  # no server needed for the mapping
    env = app_env(
        Settings(database_url="postgresql://u@127.0.0.1:5432/test", db_pool_size=3, db_max_overflow=2), "Orders"
    )
    assert (env["ORDERS_POSTGRES_POOL_SIZE"], env["ORDERS_POSTGRES_MAX_OVERFLOW"]) == ("3", "2")
