"""Start-up with a bad configuration, as real processes (issue 14, items 6-8): `execledger run` and `execledger
config check` exit 3 with exactly one line naming the setting, before any trading task, writer lock, socket or
store exists; read commands refuse a missing ledger instead of creating one. Both backends where a store is
involved (PostgreSQL: no schema is created)."""

import asyncio
import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

from execledger.infrastructure.simulator import KrakenSimulator
from tests.conftest import TEST_DATABASE_URL, _drop_schema, require_postgres

EXE = str(Path(sys.executable).with_name("execledger"))
SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
    return {**env, **values}


async def execledger(*args: str, env: dict[str, str], timeout: float = 120) -> tuple[int, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        EXE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"execledger {' '.join(args)} did not exit within {timeout}s: it started instead of refusing")
    return proc.returncode, err.decode().strip().splitlines()


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def bad_configurations(tmp_path: Path, busy_port: int) -> dict[str, tuple[dict[str, str], str]]:
    """name -> (environment, the setting the one line must name)"""
    lax_secret = tmp_path / "secret"
    lax_secret.write_text(SECRET)
    lax_secret.chmod(0o644)
    lax_file = tmp_path / "lax.env"
    lax_file.write_text(f"export EXECLEDGER_KRAKEN_SECRET={SECRET}\n")
    lax_file.chmod(0o644)
    lower_file = tmp_path / "lower.env"
    lower_file.write_text(f"execledger_kraken_secret={SECRET}\n")
    lower_file.chmod(0o640)
    venue = {"EXECLEDGER_KRAKEN_URL": "http://127.0.0.1:9"}
    keyed = {**venue, "EXECLEDGER_KRAKEN_KEY": "k"}
    return {
        "non-loopback bind without a token": ({"EXECLEDGER_API_HOST": "0.0.0.0"}, "EXECLEDGER_API_TOKEN"),
        "short token": ({"EXECLEDGER_API_TOKEN": "hunter2"}, "EXECLEDGER_API_TOKEN"),
        "missing key": (venue, "EXECLEDGER_KRAKEN_KEY"),
        "non-base64 secret": ({**keyed, "EXECLEDGER_KRAKEN_SECRET": "not base64!"}, "EXECLEDGER_KRAKEN_SECRET"),
        "secret file mode": (
            {**keyed, "EXECLEDGER_KRAKEN_SECRET_FILE": str(lax_secret)},
            "EXECLEDGER_KRAKEN_SECRET_FILE",
        ),
        "busy port": ({"EXECLEDGER_API_PORT": str(busy_port)}, "EXECLEDGER_API_PORT"),
        "port out of range": ({"EXECLEDGER_API_PORT": "70000"}, "EXECLEDGER_API_PORT"),
        "plain http off loopback": ({"EXECLEDGER_KRAKEN_URL": "http://example.com"}, "EXECLEDGER_KRAKEN_URL"),
        "no WS URL for another origin": ({"EXECLEDGER_KRAKEN_URL": "https://example.com"}, "EXECLEDGER_KRAKEN_WS_URL"),
        "ws:// off loopback": (
            {"EXECLEDGER_KRAKEN_URL": "https://api.kraken.com", "EXECLEDGER_KRAKEN_WS_URL": "ws://10.1.2.3/v2"},
            "EXECLEDGER_KRAKEN_WS_URL",
        ),
        "0644 config file with export": ({"EXECLEDGER_CONFIG_FILE": str(lax_file)}, "EXECLEDGER_CONFIG_FILE"),
        "0640 config file, lower case": ({"EXECLEDGER_CONFIG_FILE": str(lower_file)}, "EXECLEDGER_CONFIG_FILE"),
    }


CASES = [
    "non-loopback bind without a token",
    "short token",
    "missing key",
    "non-base64 secret",
    "secret file mode",
    "busy port",
    "port out of range",
    "plain http off loopback",
    "no WS URL for another origin",
    "ws:// off loopback",
    "0644 config file with export",
    "0640 config file, lower case",
]


def assert_refused(code: int, lines: list[str], setting: str) -> None:
    assert code == 3, lines
    assert len(lines) == 1, lines  # one line, no traceback
    assert lines[0].startswith(f"configuration error: {setting}: "), lines
    assert SECRET not in lines[0] and "hunter2" not in lines[0]


@pytest.mark.parametrize("case", CASES)
async def test_run_refuses_a_bad_configuration_before_starting_anything(tmp_path, busy_port, case):
    env, setting = bad_configurations(tmp_path, busy_port)[case]
    data_dir = tmp_path / "data"
    code, lines = await execledger("run", env=clean_env(EXECLEDGER_DATA_DIR=str(data_dir), **env))
    assert_refused(code, lines, setting)
    assert not data_dir.exists()  # no store, no writer lock file, no nonce


@pytest.mark.parametrize("case", CASES)
async def test_config_check_runs_the_same_checks(tmp_path, busy_port, case):
    env, setting = bad_configurations(tmp_path, busy_port)[case]
    data_dir = tmp_path / "data"
    code, lines = await execledger("config", "check", env=clean_env(EXECLEDGER_DATA_DIR=str(data_dir), **env))
    assert code == 3 and lines and lines[-1].startswith(f"configuration error: {setting}: "), lines
    assert not data_dir.exists()


@pytest.fixture
def pg_schema():
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield schema, f"{TEST_DATABASE_URL}{'&' if '?' in TEST_DATABASE_URL else '?'}schema={schema}"
    _drop_schema(schema)


def schema_exists(schema: str) -> bool:
    import psycopg

    from execledger.infrastructure.eventstore import parse_postgres_url

    t = parse_postgres_url(TEST_DATABASE_URL)
    with psycopg.connect(host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password) as conn:
        query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s"
        return conn.execute(query, (schema,)).fetchone() is not None


@pytest.mark.postgres
@pytest.mark.parametrize(
    "case", ["non-loopback bind without a token", "missing key", "busy port", "ws:// off loopback"]
)
async def test_run_refuses_before_creating_the_postgres_schema(tmp_path, busy_port, pg_schema, case):
    schema, url = pg_schema
    env, setting = bad_configurations(tmp_path, busy_port)[case]
    code, lines = await execledger(
        "run", env=clean_env(EXECLEDGER_DATA_DIR=str(tmp_path / "data"), EXECLEDGER_DATABASE_URL=url, **env)
    )
    assert_refused(code, lines, setting)
    assert not schema_exists(schema) and not (tmp_path / "data").exists()


async def test_an_unreachable_database_is_one_line_without_the_password(tmp_path):
    url = "postgresql://u:hunter2@127.0.0.1:1/db"
    for args in (("run",), ("config", "check"), ("report",)):
        code, lines = await execledger(
            *args, env=clean_env(EXECLEDGER_DATA_DIR=str(tmp_path / "d"), EXECLEDGER_DATABASE_URL=url)
        )
        assert code == 3 and lines[-1].startswith("configuration error: EXECLEDGER_DATABASE_URL: "), lines
        assert not any("hunter2" in line for line in lines)


async def test_a_key_kraken_refuses_stops_run_and_config_check_online(tmp_path):
    """The promised credentials check: one signed Balance call before anything starts (here: the simulator
    refuses a key it does not know with EAPI:Invalid key)."""
    async with KrakenSimulator() as sim:
        env = clean_env(
            EXECLEDGER_DATA_DIR=str(tmp_path / "data"),
            EXECLEDGER_KRAKEN_URL=sim.rest_url,
            EXECLEDGER_KRAKEN_KEY="not-the-simulators-key",
            EXECLEDGER_KRAKEN_SECRET=SECRET,
        )
        code, lines = await execledger("run", env=env)
        assert_refused(code, lines, "EXECLEDGER_KRAKEN_KEY")
        assert "EAPI:Invalid key" in lines[0]
        offline = await execledger("config", "check", env=env)
        assert offline[0] == 0, offline  # the format is fine: only the venue can tell
        code, lines = await execledger("config", "check", "--online", env=env)
        assert code == 3 and lines[-1].startswith("configuration error: EXECLEDGER_KRAKEN_KEY: "), lines
        good = {**env, "EXECLEDGER_KRAKEN_KEY": sim.key, "EXECLEDGER_KRAKEN_SECRET": sim.secret}
        code, lines = await execledger("config", "check", "--online", env=good)
        assert code == 0, lines
