"""An operator command is checked before it is recorded, when nobody else would check it until the next start.

The hostile tester's finding: ``execledger halt`` in the wrong directory (or with a mistyped schema) printed
"recorded; it takes effect when one starts", exit 0, and created an empty ledger, while the real service kept
trading; ``cancel``/``close``/``resolve`` of ids that do not exist also said "recorded". Now the CLI and the HTTP
routes refuse a ledger that does not exist (exit 3, 409) or that no trading process has ever run on, and, while no
trading process runs, an order or signal that is not in the ledger (exit 5, 404); nothing is created or recorded.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from execledger.domain.values import OrderRole
from execledger.infrastructure.api import ApiContext, create_api
from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.cli import main
from execledger.infrastructure.commandbus import CommandBus
from execledger.infrastructure.eventstore import open_orders_app, parse_postgres_url
from execledger.infrastructure.writerlock import WriterLock
from tests.faults.harness import EXECLEDGER
from tests.harness import Harness
from tests.test_missing_ledger import nothing_created, schema_of

OPERATOR_COMMANDS = [
    ["halt", "--reason", "EMERGENCY", "--cancel-entries"],
    ["resume", "--reason", "over"],
    ["cancel", "some-order", "--reason", "r"],
    ["close", "some-signal", "--reason", "r"],
    ["resolve", "some-order", "--as", "canceled", "--reason", "r"],
]


def invoke(args, settings):
    env = {k: None for k in os.environ if k.startswith("EXECLEDGER_")}
    env["EXECLEDGER_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url is not None:
        env["EXECLEDGER_DATABASE_URL"] = settings.database_url.get_secret_value()
    return CliRunner().invoke(main, [*args, "--wait", "0"], env=env)


def recorded_commands(settings) -> int:
    with open_ledger(settings) as lg:
        return lg.commands.recorder.max_notification_id() or 0


def where(settings) -> str:
    return str(settings.data_dir) if settings.database_url is None else f"(schema {schema_of(settings)})"


@pytest.mark.parametrize("args", OPERATOR_COMMANDS, ids=lambda a: a[0])
def test_operator_commands_refuse_a_missing_ledger_and_create_nothing(settings, args):
    result = invoke(args, settings)
    assert result.exit_code == 3, result.output
    assert "no ledger at" in result.output and where(settings) in result.output
    assert "nothing was created or recorded" in result.output and len(result.output.strip().splitlines()) == 1
    assert nothing_created(settings)


@pytest.mark.parametrize("args", OPERATOR_COMMANDS, ids=lambda a: a[0])
def test_operator_commands_refuse_a_ledger_no_trading_process_ever_ran_on(settings, args):
    open_orders_app(settings).close()  # what another role (an api process on a mistyped schema) leaves behind
    result = invoke(args, settings)
    assert result.exit_code == 3, result.output
    assert "no trading process has ever run on the ledger at" in result.output and where(settings) in result.output
    assert recorded_commands(settings) == 0


def test_a_halt_on_a_ledger_a_trading_process_ran_on_is_recorded_for_its_next_start(settings):
    with WriterLock(settings):  # a trading process started once (and never wrote anything: the venue was down)
        pass
    open_orders_app(settings).close()
    result = invoke(["halt", "--reason", "before the restart", "--by", "bob"], settings)
    assert result.exit_code == 0 and "no trading process is running: it takes effect when one starts" in result.output
    assert recorded_commands(settings) == 1


@pytest.fixture(params=["read models current", "read models behind"])
async def traded(request, settings, clock):
    """A ledger with a bracketed position and no trading process running; the read models caught up or not (the
    lookup then scans the log)."""
    with open_ledger(settings, clock=clock) as lg:
        h = Harness(lg.ledger, clock)
        entry = await h.signal(signal_id="sig-1")
        h.venue.fill(h.txid(entry), "1", "100")
        await h.settle()
        entry = h.engine.orders[entry.id]
        [stop] = h.legs(entry, OrderRole.STOP_LOSS)
        if request.param == "read models current":
            lg.projector.catch_up()
        assert (lg.projector.lag() == 0) is (request.param == "read models current")
    return settings, entry, stop


@pytest.mark.parametrize(
    "args",
    [
        ["cancel", "no-such-order"],
        ["cancel", "sig-1"],  # a signal id is not an order id: the trading process would refuse it too
        ["resolve", "2c4a0e52-2f7c-4d6a-9d0e-000000000000", "--as", "canceled"],
        ["close", "no-such-signal"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
async def test_unknown_ids_are_refused_with_exit_5_while_no_trading_process_runs(traded, args):
    settings, _entry, _stop = traded
    result = invoke([*args, "--reason", "typo"], settings)
    assert result.exit_code == 5, result.output
    assert "not recorded" in result.output and "in this ledger" in result.output
    assert recorded_commands(settings) == 0


async def test_every_id_of_an_order_or_signal_is_found_before_recording(traded):
    settings, _entry, stop = traded
    accepted = [
        ["cancel", str(stop.id)],  # the trading process refuses to cancel a protective leg: that is its call
        ["cancel", stop.txid],
        ["cancel", stop.cl_ord_id],
        ["resolve", stop.cl_ord_id, "--as", "canceled"],
        ["close", "sig-1"],
        ["close", stop.txid],  # an order id closes that order's signal
        ["close", str(stop.id)],
    ]
    for n, args in enumerate(accepted, start=1):
        result = invoke([*args, "--reason", "ops"], settings)
        assert result.exit_code == 0 and "no trading process is running" in result.output, (args, result.output)
        assert recorded_commands(settings) == n


async def test_a_cancel_or_resolve_of_an_order_that_has_ended_is_exit_2_and_not_recorded(traded):
    settings, entry, _stop = traded  # the entry filled: it has ended, and stays ended
    for args in (["cancel", entry.txid], ["resolve", str(entry.id), "--as", "canceled"]):
        result = invoke([*args, "--reason", "late"], settings)
        assert result.exit_code == 2 and "is already filled" in result.output, result.output
    assert recorded_commands(settings) == 0


async def test_a_bad_decimal_or_text_is_exit_2_naming_the_option_before_the_ledger_is_touched(settings):
    result = invoke(["resolve", "x", "--as", "filled", "--price", "1e999999", "--reason", "r"], settings)
    assert result.exit_code == 2 and "--price" in result.output and "plain notation" in result.output
    result = invoke(["halt", "--reason", "a\x07b"], settings)
    assert result.exit_code == 2 and "--reason" in result.output and "U+0007" in result.output
    assert nothing_created(settings)


def api_client(lg) -> TestClient:
    """The API of an ``--role api`` process: its bus knows no local trading process."""
    return TestClient(TestServer(create_api(ApiContext(ledger=lg, bus=CommandBus(lg, role="api")))))


async def test_http_routes_refuse_a_ledger_no_trading_process_ever_ran_on(settings):
    with open_ledger(settings) as lg:  # the api process opened (created) it at its start
        async with api_client(lg) as client:
            r = await client.post("/v1/trading/halt", json={"reason": "EMERGENCY", "cancel_entries": True})
            body = await r.json()
            assert r.status == 409 and body["refusal"] == "no_ledger", body
            assert (
                "no trading process has ever run on the ledger at" in body["error"] and where(settings) in body["error"]
            )
            assert body["setting"] in ("EXECLEDGER_DATA_DIR", "EXECLEDGER_DATABASE_URL")
        assert (lg.commands.recorder.max_notification_id() or 0) == 0


async def test_http_routes_answer_404_for_unknown_ids_and_record_known_ones(traded):
    settings, entry, stop = traded
    with open_ledger(settings) as lg:
        async with api_client(lg) as client:
            for path, body in [
                ("/v1/orders/no-such-order/cancel", {"reason": "r"}),
                ("/v1/orders/no-such-order/resolve", {"as": "canceled", "reason": "r"}),
                ("/v1/signals/no-such-signal/close", {"reason": "r"}),
            ]:
                r = await client.post(path, json=body)
                answer = await r.json()
                assert r.status == 404 and answer["refusal"] == "not_found" and "not recorded" in answer["error"]
            assert (lg.commands.recorder.max_notification_id() or 0) == 0
            r = await client.post(f"/v1/orders/{entry.txid}/cancel", json={"reason": "r"})
            answer = await r.json()
            assert r.status == 409 and answer["refusal"] == "not_allowed" and "already filled" in answer["error"]
            r = await client.post(f"/v1/orders/{stop.cl_ord_id}/cancel", json={"reason": "r"})
            assert r.status == 202 and (await r.json())["status"] == "recorded"
            r = await client.post("/v1/trading/halt", json={"reason": "later"})
            assert r.status == 202
        assert lg.commands.recorder.max_notification_id() == 2


def test_a_real_cli_in_the_wrong_directory_refuses_and_leaves_nothing_behind(tmp_path):
    """The finding as the tester ran it: a real process, from another directory, with the default data dir."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
    result = subprocess.run(
        [EXECLEDGER, "halt", "--reason", "EMERGENCY", "--cancel-entries"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert f"no ledger at {elsewhere / 'execledger-data'}" in result.stderr
    assert list(elsewhere.iterdir()) == []


@pytest.mark.postgres
def test_a_real_cli_with_a_mistyped_schema_refuses_and_creates_no_schema(tmp_path):
    from tests.conftest import TEST_DATABASE_URL, require_postgres

    require_postgres()
    schema = f"typo_{os.getpid()}"
    sep = "&" if "?" in TEST_DATABASE_URL else "?"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
    env["EXECLEDGER_DATABASE_URL"] = f"{TEST_DATABASE_URL}{sep}schema={schema}"
    result = subprocess.run(
        [EXECLEDGER, "cancel", "x", "--reason", "r"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3, result.stderr
    assert f"(schema {schema})" in result.stderr and "nothing was created or recorded" in result.stderr

    import psycopg

    t = parse_postgres_url(TEST_DATABASE_URL)
    with psycopg.connect(host=t.host, port=t.port, dbname=t.dbname, user=t.user, password=t.password) as conn:
        found = conn.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)).fetchone()
    assert found is None


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("process tests assume Linux")
