"""A mistyped EXECLEDGER_DATA_DIR (or a PostgreSQL schema that holds no ledger) is refused by every command that
acts on an existing ledger, with exit 3 naming where it looked; nothing is created (issue 14, item 8)."""

import os

import pytest
from click.testing import CliRunner

from execledger.infrastructure.cli import main
from execledger.infrastructure.eventstore import open_orders_app, parse_postgres_url
from tests.conftest import TEST_DATABASE_URL

COMMANDS = [
    ["report"],
    ["report", "signals", "--json"],
    ["audit", "s-1"],
    ["state", "--at", "2026-01-01T00:00:00Z"],
    ["replay"],
    ["projections", "rebuild"],
]  # operator commands (halt, resume, ...) may be recorded before the first start: the trading process applies them


def invoke(args, settings):
    env = {k: None for k in os.environ if k.startswith("EXECLEDGER_")}
    env["EXECLEDGER_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url is not None:
        env["EXECLEDGER_DATABASE_URL"] = settings.database_url.get_secret_value()
    return CliRunner().invoke(main, args, env=env)


def schema_of(settings) -> str | None:
    if settings.database_url is None:
        return None
    return parse_postgres_url(settings.database_url.get_secret_value()).schema


def nothing_created(settings) -> bool:
    if settings.database_url is None:
        return not settings.data_dir.exists()
    import psycopg

    t = parse_postgres_url(TEST_DATABASE_URL)
    with psycopg.connect(host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password) as conn:
        query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s"
        return conn.execute(query, (schema_of(settings),)).fetchone() is None


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_commands_refuse_a_missing_ledger_and_create_nothing(settings, args):
    result = invoke(args, settings)
    assert result.exit_code == 3, result.output
    where = str(settings.data_dir) if settings.database_url is None else f"(schema {schema_of(settings)})"
    assert "no ledger at" in result.output and where in result.output and "nothing was created" in result.output
    assert nothing_created(settings)


def test_an_existing_empty_ledger_still_reports_nothing(settings):
    open_orders_app(settings).close()  # what `execledger run` leaves after its first start
    result = invoke(["report", "--json"], settings)
    assert result.exit_code == 0 and '"total": 0' in result.output, result.output
