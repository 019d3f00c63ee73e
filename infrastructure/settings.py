"""Configuration: the fixed ``EXECLEDGER_*`` names of DESIGN.md, from the environment (secrets stay SecretStr)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        default="starter", description="Kraken verification tier whose rate limits the adapter models")
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_token: SecretStr | None = Field(default=None, description="bearer token; required when the API binds beyond loopback")
    default_timeout_s: float = Field(default=300.0, gt=0, description="limit-order timeout when a signal has none")

    @property
    def backend(self) -> str:
        return "postgres" if self.database_url is not None else "sqlite"

    def with_exchange(self, *, url: str, ws_url: str | None, key: str, secret: str) -> "Settings":
        """A validated copy pointing at another Kraken endpoint (e.g. the built-in simulator)."""
        return Settings.model_validate({**self.model_dump(), "kraken_url": url, "kraken_ws_url": ws_url,
                                        "kraken_key": key, "kraken_secret": secret, "kraken_secret_file": None})
