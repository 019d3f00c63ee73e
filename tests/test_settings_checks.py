"""Configuration checked before anything starts (issue 14, items 6 and 7): each bad value is refused with one line
naming the setting; the config-file rules hold for every spelling; the WS URL is derived or required."""

import os
import stat

import pytest
from pydantic import ValidationError

from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.preflight import ConfigError, check_api_bind, check_credentials, load
from execledger.infrastructure.settings import Settings, describe

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="  # base64 of a fake secret


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("EXECLEDGER_") and key not in ("EXECLEDGER_TEST_DATABASE_URL", "EXECLEDGER_SHARED_DIR"):
            monkeypatch.delenv(key)


def refused(**values) -> str:
    with pytest.raises(ValidationError) as info:
        Settings(**values)
    line = describe(info.value)
    assert "\n" not in line
    return line


@pytest.mark.parametrize(
    ("rest", "ws"),
    [
        ("https://api.kraken.com", "wss://ws-auth.kraken.com/v2"),  # REFERENCE.md 2 and 6.1
        ("https://api.kraken.com/", "wss://ws-auth.kraken.com/v2"),
        ("http://127.0.0.1:8765", "ws://127.0.0.1:8765/v2"),  # the simulator's layout
        ("http://localhost:9000", "ws://localhost:9000/v2"),
        ("http://[::1]:9000", "ws://[::1]:9000/v2"),
    ],
)
def test_ws_url_is_derived_for_kraken_and_the_simulator(rest, ws):
    settings = Settings(kraken_url=rest, kraken_key="k", kraken_secret=SECRET)
    assert settings.kraken_ws_url == ws
    assert KrakenExchange.from_settings(settings).ws_url == ws  # what the stream connects to


def test_ws_url_is_required_for_any_other_origin_and_checked_when_given():
    assert refused(kraken_url="https://kraken-proxy.example").startswith("EXECLEDGER_KRAKEN_WS_URL: is required")
    given = Settings(kraken_url="https://kraken-proxy.example", kraken_ws_url="wss://ws.proxy.example/v2")
    assert given.kraken_ws_url == "wss://ws.proxy.example/v2"
    assert "use wss" in refused(kraken_url="https://api.kraken.com", kraken_ws_url="ws://10.1.2.3/v2")
    assert "EXECLEDGER_KRAKEN_WS_URL" in refused(kraken_ws_url="ftp://127.0.0.1/v2")


@pytest.mark.parametrize(
    ("values", "setting", "text"),
    [
        ({"kraken_url": "http://example.com"}, "EXECLEDGER_KRAKEN_URL", "use https"),
        ({"kraken_url": "https://api.kraken.com/0"}, "EXECLEDGER_KRAKEN_URL", "origin only"),
        ({"kraken_url": "https://u:hunter2@api.kraken.com"}, "EXECLEDGER_KRAKEN_URL", "user or password"),
        ({"kraken_url": "https://api.kraken.com:99999"}, "EXECLEDGER_KRAKEN_URL", "origin"),
        ({"api_port": 70000}, "EXECLEDGER_API_PORT", "65535"),
        ({"api_port": "http"}, "EXECLEDGER_API_PORT", "integer"),
        ({"api_token": "short"}, "EXECLEDGER_API_TOKEN", "at least 32"),
        ({"api_token": "x" * 31 + " y"}, "EXECLEDGER_API_TOKEN", "without spaces"),
        ({"api_token": "ü" * 40}, "EXECLEDGER_API_TOKEN", "ASCII"),
        ({"kraken_tier": "gold"}, "EXECLEDGER_KRAKEN_TIER", "starter"),
        ({"default_timeout_s": 0}, "EXECLEDGER_DEFAULT_TIMEOUT_S", "greater than 0"),
        # Kraken's AddOrder deadline is now + 2 s to now + 60 s (REFERENCE.md 3.2): infinity killed the sender,
        # 100000 sent a deadline Kraken refuses (break test 2026-12-02).
        ({"submit_deadline_s": "inf"}, "EXECLEDGER_SUBMIT_DEADLINE_S", "less than or equal to 60"),
        ({"submit_deadline_s": 100000}, "EXECLEDGER_SUBMIT_DEADLINE_S", "less than or equal to 60"),
        ({"submit_deadline_s": 1}, "EXECLEDGER_SUBMIT_DEADLINE_S", "greater than or equal to 2"),
        ({"submit_deadline_s": "nan"}, "EXECLEDGER_SUBMIT_DEADLINE_S", "EXECLEDGER_SUBMIT_DEADLINE_S"),
    ],
)
def test_bad_values_are_one_line_naming_the_setting(values, setting, text):
    line = refused(**values)
    assert line.startswith(f"{setting}: ") and text in line
    assert "hunter2" not in line


def test_every_bad_setting_is_named_in_the_one_line():
    line = refused(api_port=-1, api_token="short")
    assert "EXECLEDGER_API_PORT" in line and "EXECLEDGER_API_TOKEN" in line


@pytest.mark.parametrize(
    "line",
    [
        f"EXECLEDGER_KRAKEN_SECRET={SECRET}",
        f"export EXECLEDGER_KRAKEN_SECRET={SECRET}",
        f"execledger_kraken_secret={SECRET}",
        f"  Execledger_Kraken_Secret = '{SECRET}'",
        'EXECLEDGER_API_TOKEN="' + "a" * 40 + '"',
        "EXECLEDGER_DATABASE_URL=postgresql://u:pw@127.0.0.1/db",
        "export execledger_kraken_key=abc",
    ],
)
def test_a_config_file_with_a_credential_must_be_private_in_every_spelling(tmp_path, line):
    f = tmp_path / "execledger.env"
    f.write_text(line + "\n")
    f.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as info:
        load(f)
    assert str(info.value).startswith("EXECLEDGER_CONFIG_FILE: ") and SECRET not in str(info.value)
    f.chmod(0o600)
    load(f)  # private: accepted


def test_a_config_file_that_others_may_write_or_that_names_an_unknown_setting_is_refused(tmp_path):
    f = tmp_path / "execledger.env"
    f.write_text("EXECLEDGER_API_PORT=9000\n")
    f.chmod(0o666)
    with pytest.raises(ConfigError, match="writable by group or others"):
        load(f)
    f.chmod(0o644)
    assert load(f).api_port == 9000  # no credential in it: others may read it
    f.write_text("EXECLEDGER_KRAKN_URL=https://api.kraken.com\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*EXECLEDGER_KRAKN_URL"):
        load(f)
    f.write_text("EXECLEDGER_API_PORT=99999\n")
    with pytest.raises(ConfigError, match=r"^EXECLEDGER_API_PORT: "):
        load(f)


def test_credentials_are_checked_for_format_naming_the_setting(tmp_path):
    venue = {"kraken_url": "https://api.kraken.com"}
    with pytest.raises(ConfigError, match=r"^EXECLEDGER_KRAKEN_KEY: is not set"):
        check_credentials(Settings(**venue))
    with pytest.raises(ConfigError, match=r"^EXECLEDGER_KRAKEN_SECRET: is not set"):
        check_credentials(Settings(**venue, kraken_key="k"))
    with pytest.raises(ConfigError, match=r"^EXECLEDGER_KRAKEN_SECRET: the Kraken API secret is not valid base64"):
        check_credentials(Settings(**venue, kraken_key="k", kraken_secret="not base64!"))
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o644)
    with pytest.raises(ConfigError, match=r"^EXECLEDGER_KRAKEN_SECRET_FILE: .*chmod 600"):
        check_credentials(Settings(**venue, kraken_key="k", kraken_secret_file=secret_file))
    secret_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert check_credentials(Settings(**venue, kraken_key="k", kraken_secret_file=secret_file)).key == "k"


def test_api_bind_needs_a_token_off_loopback_and_a_free_local_port():
    import socket

    with pytest.raises(ConfigError, match=r"^EXECLEDGER_API_TOKEN: is required to bind the API to 0.0.0.0"):
        check_api_bind(Settings(api_host="0.0.0.0", api_port=0))
    check_api_bind(Settings(api_host="0.0.0.0", api_port=0, api_token="a" * 32))
    with pytest.raises(ConfigError, match=r"^EXECLEDGER_API_HOST: "):
        check_api_bind(Settings(api_host="192.0.2.1", api_port=0, api_token="a" * 32))  # TEST-NET: not ours
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"^EXECLEDGER_API_PORT: 127.0.0.1:{port} is already in use"):
            check_api_bind(Settings(api_port=port))
