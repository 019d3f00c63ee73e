"""The execledger CLI: the README's demo works on the embedded default and is idempotent when re-run."""

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from execledger.infrastructure.cli import main
from tests.faults.harness import free_port


def run_cli(args, data_dir, **env):
    runner = CliRunner()
    clean = {k: None for k in os.environ if k.startswith("EXECLEDGER_")}
    # A free API port: the start-up checks refuse a busy one, and 8080 may be anyone's on a shared machine.
    port = {"EXECLEDGER_API_PORT": str(free_port())}
    return runner.invoke(
        main, args, env={**clean, **port, "EXECLEDGER_DATA_DIR": str(data_dir), "COLUMNS": "200", **env}
    )


def test_demo_runs_every_path_and_leaves_its_ledger(tmp_path):
    result = run_cli(["demo"], tmp_path / "data")
    assert result.exit_code == 0, result.output
    out = result.output
    for text in (
        "price 68010 crossed the take-profit: the stop was canceled, then the position sold at market @ 68010",
        "stop filled @ 3390; the take-profit the ledger held was not needed",
        "filled 0.008 of 0.02",
        "timed out after 2 s: the rest was canceled",
        "POST /v1/trading/halt: 200 applied by",
        "POST /v1/signals: 423 trading is halted (set by demo: scheduled",
        "sl_not_below_entry_for_buy",
        "[ordermin]",
        "identical to the live tables",
        "0 differ",
    ):
        assert text in out, text
    report = run_cli(["report", "signals", "--json"], tmp_path / "data")
    signals = json.loads(report.output)["items"]
    assert len(signals) == 3 and all(s["position"] == "0" and s["open_legs"] == 0 for s in signals)
    again = run_cli(["demo"], tmp_path / "data")  # a re-run adds its own stories to the same ledger
    assert again.exit_code == 0, again.output
    assert json.loads(run_cli(["report", "signals", "--json"], tmp_path / "data").output)["total"] == 6


def test_config_check_redacts_and_reports_unreachable_store(tmp_path):
    ok = run_cli(["config", "check"], tmp_path / "data", EXECLEDGER_KRAKEN_SECRET="topsecretvalue")
    assert ok.exit_code == 0 and "topsecretvalue" not in ok.output and "***" in ok.output
    down = run_cli(
        ["config", "check"], tmp_path / "data", EXECLEDGER_DATABASE_URL="postgresql://u:hunter2@127.0.0.1:1/db"
    )
    assert down.exit_code == 3 and "hunter2" not in down.output


def test_console_script_is_installed_and_has_help():
    exe = Path(sys.executable).with_name("execledger")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "demo" in proc.stdout
