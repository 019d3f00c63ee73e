"""Operator commands against a ledger with real history: report, audit, state, replay, rebuild, halt/resume."""

import json
import os

import pytest
from click.testing import CliRunner

from execledger.domain.values import OrderRole
from execledger.infrastructure.bootstrap import build_trading, open_ledger
from execledger.infrastructure.cli import main
from execledger.infrastructure.settings import Settings
from tests.fakes import FakeExchange
from tests.harness import Harness


def cli(args, data_dir):
    env = {k: None for k in os.environ if k.startswith("EXECLEDGER_")}
    return CliRunner().invoke(main, args, env={**env, "EXECLEDGER_DATA_DIR": str(data_dir), "COLUMNS": "250"})


@pytest.fixture
async def traded(tmp_path, clock):
    settings = Settings(data_dir=tmp_path / "data")
    with open_ledger(settings, clock=clock) as lg:
        h = Harness(lg.ledger, clock)
        entry = await h.signal(signal_id="cmd-1")
        h.venue.fill(h.txid(entry), "1", "100")
        await h.settle()
        [sl] = h.legs(entry, OrderRole.STOP_LOSS)
        h.venue.fill(h.txid(sl), "1", "90")
        await h.settle()
    return tmp_path / "data", entry


async def test_report_tables_and_json(traded):
    data, _entry = traded
    r = cli(["report", "signals", "--json"], data)
    assert r.exit_code == 0, r.output
    [sig] = json.loads(r.output)["items"]
    assert sig["signal_id"] == "cmd-1" and sig["realised_pnl"] == "-10" and sig["position"] == "0"
    r = cli(["report", "fills", "--pair", "XBT/USD"], data)
    assert r.exit_code == 0 and "fills: 2 of 2" in r.output
    assert cli(["report", "orders", "--status", "nonsense"], data).exit_code == 2


async def test_audit_by_signal_and_not_found(traded):
    data, _entry = traded
    r = cli(["audit", "cmd-1"], data)
    assert r.exit_code == 0, r.output
    for text in ("Placed", "BracketPlaced", "LegEmulated", "stop_loss", "take_profit"):
        assert text in r.output
    assert cli(["audit", "nobody"], data).exit_code == 5


async def test_state_at_and_bad_time(traded):
    data, _entry = traded
    r = cli(["state", "--at", "2000-01-01T00:00:00Z"], data)
    assert r.exit_code == 0 and "orders as of 2000-01-01T00:00:00+00:00: 0" in r.output
    r = cli(["state", "--at", "2999-01-01T00:00:00Z"], data)
    assert r.exit_code == 0 and ": 2" in r.output  # entry + stop (the take-profit was held by the ledger)
    assert cli(["state", "--at", "yesterday"], data).exit_code == 2


async def test_replay_ok_and_rebuild(traded):
    data, _entry = traded
    r = cli(["replay"], data)
    assert r.exit_code == 0 and "0 differ" in r.output, r.output
    r = cli(["projections", "rebuild"], data)
    assert r.exit_code == 0 and "rebuilt from" in r.output


def carry_out_recorded_commands(data, clock):
    """What a trading process does first when it starts: carry out the commands recorded while none ran."""
    with open_ledger(Settings(data_dir=data), clock=clock) as lg:
        trading = build_trading(lg, FakeExchange(clock))
        done = trading.service.pull_commands()
        return done, lg.engine.control.state


async def test_halt_and_resume_without_a_running_trading_process_take_effect_at_its_start(traded, clock):
    data, _entry = traded
    r = cli(["halt", "--reason", "incident 42", "--by", "alice"], data)
    assert r.exit_code == 0 and "no trading process is running: it takes effect when one starts" in r.output
    done, state = carry_out_recorded_commands(data, clock)
    assert done == 1 and state.mode.value == "halted" and (state.by, state.why) == ("alice", "incident 42")
    assert carry_out_recorded_commands(data, clock)[0] == 0  # exactly once: the tracking position moved on
    assert cli(["resume"], data).exit_code == 0
    assert carry_out_recorded_commands(data, clock)[1].mode.value == "running"
    assert cli(["halt"], data).exit_code == 2  # --reason is required


async def test_a_database_error_while_carrying_out_a_command_refuses_nothing_and_it_is_read_again(traded, clock):
    """Break test (issue 18): a connection the database dropped while a command was carried out refused the
    signal as 'invalid' (its receipt said so for good). It is the database's fault, not the command's: nothing is
    recorded, the error propagates, and the next read carries the command out."""
    from eventsourcing.persistence import OperationalError

    data, _entry = traded
    assert cli(["halt", "--reason", "db test"], data).exit_code == 0
    with open_ledger(Settings(data_dir=data), clock=clock) as lg:
        trading = build_trading(lg, FakeExchange(clock))
        control = lg.engine.control
        decide = control._decide

        def dropped(command):
            raise OperationalError("terminating connection due to administrator command")

        control._decide = dropped
        with pytest.raises(OperationalError):
            trading.service.pull_commands()
        assert control.state.mode.value == "running"  # nothing decided, no receipt
        control._decide = decide
        assert trading.service.pull_commands() == 1
        assert control.state.mode.value == "halted" and control.state.why == "db test"
