"""The execledger CLI: the README's demo works on the embedded default and is idempotent when re-run."""

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from infrastructure.cli import main


def run_cli(args, data_dir, **env):
    runner = CliRunner()
    clean = {k: None for k in os.environ if k.startswith("EXECLEDGER_")}
    return runner.invoke(main, args, env={**clean, "EXECLEDGER_DATA_DIR": str(data_dir), "COLUMNS": "200", **env})


def test_demo_places_example_signals_and_prints_histories(tmp_path):
    result = run_cli(["demo"], tmp_path / "data")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.count("placed demo-") == 3
    assert "rejected demo-004: sl_price" in out and "sl_not_below_entry_for_buy" in out
    assert "rejected demo-005: quantity" in out and "ordermin" in out
    assert "rejected demo-006: pair" in out and "unknown_pair" in out
    assert out.count("Placed") >= 3 and "approved_signal" in out
    assert (tmp_path / "data" / "orders.sqlite").exists()
    again = run_cli(["demo"], tmp_path / "data")
    assert again.exit_code == 0 and again.output.count("already recorded") == 3


def test_demo_with_bad_signals_file_exits_2(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text("{not json")
    assert run_cli(["demo", "--signals", str(bad)], tmp_path / "data").exit_code == 2


def test_config_check_redacts_and_reports_unreachable_store(tmp_path):
    ok = run_cli(["config", "check"], tmp_path / "data", EXECLEDGER_KRAKEN_SECRET="topsecretvalue")
    assert ok.exit_code == 0 and "topsecretvalue" not in ok.output and "***" in ok.output
    down = run_cli(["config", "check"], tmp_path / "data",
                   EXECLEDGER_DATABASE_URL="postgresql://u:hunter2@127.0.0.1:1/db")
    assert down.exit_code == 3 and "hunter2" not in down.output


def test_console_script_is_installed_and_has_help():
    exe = Path(sys.executable).with_name("execledger")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "demo" in proc.stdout
