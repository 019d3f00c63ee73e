"""``EXECLEDGER_DATABASE_URL`` accepts one query parameter, ``schema``: every other one is a configuration error.

The hostile tester's finding: unknown query parameters were silently ignored, and with
``?options=-csearch_path%3Dother`` a second trading process ran beside the first. Now the URL parser refuses any
parameter but ``schema`` (naming it, never its value), a repeated or empty ``schema`` and a fragment; the start-up
checks and every command report it as one line, exit 3, before anything is created.
"""

from __future__ import annotations

import uuid

import pytest

from execledger.infrastructure.eventstore import StoreConfigError, parse_postgres_url
from tests.conftest import TEST_DATABASE_URL, require_postgres
from tests.test_startup import clean_env, execledger, schema_exists

BASE = "postgresql://u:hunter2@127.0.0.1:5432/db"


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?options=-csearch_path%3Dother", "'options'"),
        ("?schema=a&options=-csearch_path%3Dother", "'options'"),
        ("?sslmode=disable", "'sslmode'"),
        ("?schema=a&password=s3cret-value", "'password'"),
        ("?application_name=x&target_session_attrs=any", "'application_name', 'target_session_attrs'"),
        ("?Schema=a", "'Schema'"),
        ("?schema=a&schema=b", "more than once"),
        ("?schema=", "empty ?schema="),
        ("?schema=a#frag", "#fragment"),
        ("?schema=a-b", "letters, digits and underscores"),
    ],
)
def test_every_query_parameter_but_one_schema_is_refused_by_name(query, named):
    with pytest.raises(StoreConfigError) as info:
        parse_postgres_url(BASE + query)
    message = str(info.value)
    assert named in message, message
    assert "hunter2" not in message and "s3cret-value" not in message and "search_path" not in message


def test_a_schema_alone_and_no_query_at_all_still_parse():
    assert parse_postgres_url(BASE).schema == ""
    assert parse_postgres_url(BASE + "?schema=ledger_2").schema == "ledger_2"


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("run",), ("run", "--role", "trading"), ("config", "check"), ("halt",)])
async def test_commands_refuse_an_unsupported_parameter_before_creating_anything(tmp_path, command):
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in TEST_DATABASE_URL else "?"
    url = f"{TEST_DATABASE_URL}{sep}schema={schema}&options=-csearch_path%3Dother"
    args = (*command, "--reason", "r") if command == ("halt",) else command
    code, lines = await execledger(
        *args, env=clean_env(EXECLEDGER_DATA_DIR=str(tmp_path / "data"), EXECLEDGER_DATABASE_URL=url)
    )
    assert code == 3 and len(lines) == 1, lines
    assert lines[0].startswith("configuration error: EXECLEDGER_DATABASE_URL: ") and "'options'" in lines[0], lines
    assert "search_path" not in lines[0]
    assert not schema_exists(schema) and not (tmp_path / "data").exists()
