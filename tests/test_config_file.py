"""The optional configuration file: same names as the environment, the environment wins, secrets need chmod 600."""

import os

import pytest
from click.testing import CliRunner

from execledger.infrastructure.cli import main
from execledger.infrastructure.settings import ConfigFileError, load_settings


def test_file_sets_keys_and_environment_wins(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith("EXECLEDGER_") and key != "EXECLEDGER_TEST_DATABASE_URL":
            monkeypatch.delenv(key)
    f = tmp_path / "execledger.env"
    f.write_text("EXECLEDGER_API_PORT=9999\nEXECLEDGER_DEFAULT_TIMEOUT_S=42\n")
    s = load_settings(f)
    assert (s.api_port, s.default_timeout_s) == (9999, 42)
    monkeypatch.setenv("EXECLEDGER_API_PORT", "7777")
    assert load_settings(f).api_port == 7777


def test_file_with_a_secret_must_be_private(tmp_path):
    f = tmp_path / "secret.env"
    f.write_text("EXECLEDGER_KRAKEN_SECRET=c2VjcmV0\n")
    f.chmod(0o644)
    with pytest.raises(ConfigFileError, match="chmod 600") as info:
        load_settings(f)
    assert "c2VjcmV0" not in str(info.value)
    f.chmod(0o600)
    assert load_settings(f).kraken_secret.get_secret_value() == "c2VjcmV0"


def test_cli_config_option_and_missing_file(tmp_path):
    env = {k: None for k in os.environ if k.startswith("EXECLEDGER_")}
    f = tmp_path / "c.env"
    f.write_text(f"EXECLEDGER_DATA_DIR={tmp_path / 'd'}\nEXECLEDGER_API_PORT=9123\n")
    ok = CliRunner().invoke(main, ["--config", str(f), "config", "check"], env=env)
    assert ok.exit_code == 0 and "EXECLEDGER_API_PORT = 9123" in ok.output
    missing = CliRunner().invoke(main, ["--config", str(tmp_path / "nope.env"), "config", "check"], env=env)
    assert missing.exit_code == 3 and "does not exist" in missing.output
