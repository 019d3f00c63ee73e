"""Credentials: from env or a private file, format-checked, and never shown."""

import os

import pytest
from pydantic import SecretStr

from execledger.infrastructure.kraken.credentials import CredentialsError, KrakenCredentials, read_secret_file
from execledger.infrastructure.settings import Settings
from tests.kraken.conftest import KEY, SECRET


def test_from_environment(monkeypatch):
    monkeypatch.setenv("EXECLEDGER_KRAKEN_KEY", KEY)
    monkeypatch.setenv("EXECLEDGER_KRAKEN_SECRET", SECRET)
    monkeypatch.delenv("EXECLEDGER_KRAKEN_SECRET_FILE", raising=False)
    creds = KrakenCredentials.from_settings(Settings())
    assert creds.key == KEY and creds.secret_bytes()


def test_from_a_private_file(tmp_path):
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    os.chmod(path, 0o600)
    creds = KrakenCredentials.from_settings(Settings(kraken_key=KEY, kraken_secret_file=path))
    assert creds.secret.get_secret_value() == SECRET


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_file_readable_by_others_is_refused_with_a_clear_error(tmp_path, mode):
    path = tmp_path / "secret"
    path.write_text(SECRET)
    os.chmod(path, mode)
    with pytest.raises(CredentialsError, match="chmod 600") as info:
        read_secret_file(path)
    assert SECRET not in str(info.value)


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(CredentialsError, match="EXECLEDGER_KRAKEN_KEY"):
        KrakenCredentials.from_settings(Settings(kraken_secret=SECRET))
    with pytest.raises(CredentialsError, match="EXECLEDGER_KRAKEN_SECRET"):
        KrakenCredentials.from_settings(Settings(kraken_key=KEY))
    with pytest.raises(CredentialsError, match="cannot be read"):
        read_secret_file(tmp_path / "absent")


@pytest.mark.parametrize("bad", ["not base64 at all!", "abc"])
def test_a_malformed_secret_is_refused_without_echoing_it(bad):
    with pytest.raises(CredentialsError, match="base64") as info:
        KrakenCredentials(key=KEY, secret=SecretStr(bad))
    assert bad not in str(info.value) and bad not in repr(info.value)


def test_repr_and_str_are_redacted():
    creds = KrakenCredentials(key=KEY, secret=SecretStr(SECRET))
    for shown in (repr(creds), str(creds), f"{creds}"):
        assert SECRET not in shown and KEY not in shown
