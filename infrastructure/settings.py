"""Configuration: the fixed ``EXECLEDGER_*`` names of DESIGN.md, from the environment (secrets stay SecretStr)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigFileError(ValueError):
    """The optional configuration file cannot be used (the message never contains its secrets)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXECLEDGER_", extra="ignore")

    data_dir: Path = Field(default=Path("./execledger-data"), description="where the embedded SQLite files live")
    database_url: SecretStr | None = Field(default=None, description="postgresql://... selects PostgreSQL")
    kraken_url: str | None = Field(default=None, description="Kraken REST origin; unset starts the simulator")
    kraken_ws_url: str | None = None
    kraken_key: SecretStr | None = None
    kraken_secret: SecretStr | None = None
    kraken_secret_file: Path | None = None
    kraken_tier: Literal["starter", "intermediate", "pro", "none"] = Field(
        default="starter", description="Kraken verification tier whose rate limits the adapter models"
    )
    kraken_breaker_reset_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="after the circuit breaker opens (5 consecutive transport/5xx failures), how long until reads "
        "probe the venue again; AddOrder waits until one succeeds",
    )
    db_pool_size: int = Field(default=5, ge=1, le=100, description="PostgreSQL connections kept per pool")
    db_max_overflow: int = Field(default=5, ge=0, le=100, description="extra connections a pool may open under load")
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_token: SecretStr | None = Field(
        default=None, description="bearer token; required when the API binds beyond loopback"
    )
    default_timeout_s: float = Field(default=300.0, gt=0, description="limit-order timeout when a signal has none")
    signal_max_age_s: float = Field(
        default=60.0,
        gt=0,
        description="a signal not sent within this many seconds of its arrival (the trading process busy or down, "
        "the venue unavailable) is not placed, and the refusal is recorded",
    )
    max_pending_entries: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="backpressure: while this many entries wait to be sent (or the venue is unavailable), new "
        "signals are refused with 503 and Retry-After",
    )
    submit_deadline_s: float = Field(
        default=30.0,
        gt=0,
        description="AddOrder deadline; an unknown outcome not found "
        "on the venue after it (plus a grace) is proof the order was never placed",
    )

    @property
    def backend(self) -> str:
        return "postgres" if self.database_url is not None else "sqlite"

    def with_exchange(self, *, url: str, ws_url: str | None, key: str, secret: str) -> Settings:
        """A validated copy pointing at another Kraken endpoint (e.g. the built-in simulator)."""
        return Settings.model_validate(
            {
                **self.model_dump(),
                "kraken_url": url,
                "kraken_ws_url": ws_url,
                "kraken_key": key,
                "kraken_secret": secret,
                "kraken_secret_file": None,
            }
        )


def load_settings(config_file: Path | str | None = None) -> Settings:
    """Settings from the environment, with an optional ``KEY=value`` file (the same ``EXECLEDGER_*`` names) under
    them; the environment wins. A file that holds a secret must not be readable by group or others."""
    import os
    import stat

    source = config_file or os.environ.get("EXECLEDGER_CONFIG_FILE")
    if not source:
        return Settings()
    path = Path(source)
    if not path.is_file():
        raise ConfigFileError(f"configuration file {path} does not exist")
    text = path.read_text()
    secret_names = (
        "EXECLEDGER_KRAKEN_SECRET",
        "EXECLEDGER_KRAKEN_KEY",
        "EXECLEDGER_DATABASE_URL",
        "EXECLEDGER_API_TOKEN",
    )
    holds_secret = any(line.strip().startswith(name) for line in text.splitlines() for name in secret_names)
    if holds_secret and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigFileError(
            f"configuration file {path} holds credentials but is readable by group or others: chmod 600 it"
        )
    return Settings(_env_file=path)
