"""Configuration: the fixed ``EXECLEDGER_*`` names of DESIGN.md, from the environment (secrets stay SecretStr).

Every value is checked when ``Settings`` is built, so a bad value never reaches a running service: a URL that is
not an origin, plain ``http``/``ws`` off loopback, a port out of range, a short API token. ``describe`` turns a
``ValidationError`` into one line naming each setting (``EXECLEDGER_API_PORT: ...``). Checks that need the
outside world (the bind, the store, the credentials file) live in ``preflight.py``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from execledger.infrastructure.kraken.urls import check_base_url, check_ws_url, derive_ws_url

PREFIX = "EXECLEDGER_"
MIN_API_TOKEN_LENGTH = 32  # e.g. `openssl rand -hex 16`; a bearer token is the only guard of a non-loopback bind
# Names whose value is a credential: a configuration file that sets any of them must be private (chmod 600).
SECRET_SETTINGS = frozenset(
    {"kraken_key", "kraken_secret", "database_url", "api_token", "notify_webhook_urls", "notify_apprise_urls"}
)
CONFIG_FILE_VAR = PREFIX + "CONFIG_FILE"


class ConfigFileError(ValueError):
    """The optional configuration file cannot be used (the message never contains its secrets)."""


def env_name(field: str) -> str:
    """``api_port`` -> ``EXECLEDGER_API_PORT``: the name an operator sets."""
    return PREFIX + field.upper()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    data_dir: Path = Field(default=Path("./execledger-data"), description="where the embedded SQLite files live")
    database_url: SecretStr | None = Field(default=None, description="postgresql://... selects PostgreSQL")
    kraken_url: str | None = Field(default=None, description="Kraken REST origin; unset starts the simulator")
    kraken_ws_url: str | None = Field(
        default=None,
        validate_default=True,
        description="Kraken WS v2 auth endpoint; derived for https://api.kraken.com and a loopback simulator",
    )
    kraken_key: SecretStr | None = None
    kraken_secret: SecretStr | None = None
    kraken_secret_file: Path | None = None
    kraken_tier: Literal["starter", "intermediate", "pro", "none"] = Field(
        default="starter", description="Kraken verification tier whose rate limits the adapter models"
    )
    deadman: Literal["entries", "all", "off"] = Field(
        default="entries",
        description="Kraken's dead-man's switch (CancelAllOrdersAfter cancels every order of the account when it "
        "fires): 'entries' arms it only while no protective leg rests, so a dead service leaves its legs resting; "
        "'all' always; 'off' never",
    )
    resting_leg: Literal["stop_loss", "take_profit", "both"] = Field(
        default="stop_loss",
        description="which protective leg rests on the venue when a signal has both a stop-loss and a "
        "take-profit; the other is held by the ledger on the public price and sent at market when crossed (Kraken "
        "holds the base for an untriggered stop, so a take-profit beside it is refused for funds); 'both' rests both "
        "(only for an account holding enough to fund both)",
    )
    kraken_breaker_reset_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="after the circuit breaker opens (5 consecutive transport/5xx failures), how long until reads "
        "probe the venue again; AddOrder waits until one succeeds",
    )
    kraken_order_entry: Literal["ws", "rest"] = Field(
        default="ws",
        description="how orders are placed and canceled: ws = WS v2 add_order/cancel_order on the authenticated "
        "executions socket while it is healthy, REST otherwise; rest = REST AddOrder/CancelOrder only",
    )
    simulator_tier: Literal["starter", "intermediate", "pro", "none"] = Field(
        default="starter",
        description="the tier whose limits the built-in simulator enforces; the adapter models the same one there",
    )
    simulator_seed: int = Field(default=1, description="seed of the built-in simulator's price walk and ids")
    simulator_fill_fractions: str = Field(
        default="", description="partial fills of a resting limit order on the built-in simulator, e.g. 0.4,0.3"
    )
    paper: bool = Field(
        default=False,
        description="paper trading: the built-in simulator's matching core on live public prices; no order leaves",
    )
    paper_feed_url: str = Field(default="wss://ws.kraken.com/v2", description="WS v2 public endpoint of paper prices")
    paper_rest_url: str | None = Field(
        default="https://api.kraken.com", description="REST origin of the Ticker fallback (unset: none)"
    )
    paper_balances: str = Field(default="ZUSD=10000", description="the paper wallet at start, ASSET=amount,...")
    paper_pairs: str = Field(default="", description="pairs the paper feed follows from the start (others on use)")
    db_pool_size: int = Field(default=5, ge=1, le=100, description="PostgreSQL connections kept per pool")
    db_max_overflow: int = Field(default=5, ge=0, le=100, description="extra connections a pool may open under load")
    api_host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    api_port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port")
    api_token: SecretStr | None = Field(
        default=None, description="bearer token; required when the API binds beyond loopback"
    )
    ops_host: str = Field(default="127.0.0.1", description="where a trading or projections process serves its probes")
    ops_port: int | None = Field(
        default=None,
        description="port of /v1/health, /v1/health/live, /v1/health/ready and /metrics (trading and "
        "projections roles; the api role serves them on the API port)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="threshold of the service's log lines"
    )
    log_format: Literal["text", "json"] = Field(default="text", description="one line of text, or one JSON object")
    log_file: Path | None = Field(default=None, description="append log lines to this file instead of stderr")
    notify_webhook_urls: SecretStr | None = Field(
        default=None, description="comma-separated URLs that get a JSON POST per notification (fills, halts, ...)"
    )
    notify_apprise_urls: SecretStr | None = Field(
        default=None, description="comma-separated apprise URLs (tgram://, slack://, mailto://, ...); needs apprise"
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
        description="backpressure: while this many entries wait to be sent or for the venue's answer (or the venue "
        "is unavailable), new signals are refused with 503 and Retry-After",
    )
    submit_deadline_s: float = Field(
        default=30.0,
        ge=2.0,
        le=60.0,
        description="AddOrder deadline; an unknown outcome not found "
        "on the venue after it (plus a grace) is proof the order was never placed; Kraken takes a deadline from "
        "now + 2 s to now + 60 s (REFERENCE.md 3.2 deadline)",
    )

    exit_submit_deadline_s: float = Field(
        default=10.0,
        ge=7.0,
        le=60.0,
        description="a protective leg's AddOrder deadline: after a crash between deciding a leg and sending it, "
        "the position waits this long (plus 5 s) before the leg is known unplaced and sent again; at least the "
        "clock's tolerated offset to the venue (5 s) plus Kraken's minimum (2 s), at most Kraken's 60 s",
    )

    stop_protect_s: float = Field(
        default=10.0,
        ge=0.0,
        le=120.0,
        description="at a graceful stop (SIGTERM), how long the service keeps deciding and sending the protective "
        "legs of filled positions (entries are withdrawn at once) before it withdraws what is left and exits",
    )

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value: Path) -> Path:
        if not str(value).strip():
            raise ValueError("is empty")
        return value

    @field_validator("kraken_url")
    @classmethod
    def _kraken_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_base_url(value)

    @field_validator("kraken_ws_url")
    @classmethod
    def _kraken_ws_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Checked when given; derived from the REST origin when it can be (Kraken's own, a loopback simulator);
        refused when it cannot: a service that silently runs without its stream sees fills a poll late."""
        if value:
            return check_ws_url(value)
        rest = info.data.get("kraken_url")
        if rest is None:
            return None  # no venue configured (the built-in simulator brings its own), or kraken_url is invalid
        derived = derive_ws_url(rest)
        if derived is None:
            raise ValueError(
                f"is required for {env_name('kraken_url')}={rest} (it is derived only for https://api.kraken.com "
                "and a plain-http loopback simulator)"
            )
        return derived

    @field_validator("api_token")
    @classmethod
    def _api_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
            raise ValueError("must be printable ASCII without spaces")
        if len(token) < MIN_API_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_API_TOKEN_LENGTH} characters (e.g. `openssl rand -hex 16`)")
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case(cls, value: object) -> object:
        """``info`` and ``INFO`` are the same level; ``JSON`` and ``json`` the same format."""
        if not isinstance(value, str):
            return value
        return value.strip().lower() if value.strip().lower() in ("text", "json") else value.strip().upper()

    @field_validator("paper_feed_url")
    @classmethod
    def _paper_feed_url(cls, value: str) -> str:
        return check_ws_url(value)

    @field_validator("paper_rest_url")
    @classmethod
    def _paper_rest_url(cls, value: str | None) -> str | None:
        return None if value is None else check_base_url(value)

    @field_validator("simulator_fill_fractions")
    @classmethod
    def _fractions(cls, value: str) -> str:
        from decimal import Decimal, InvalidOperation

        for part in (p.strip() for p in value.split(",") if p.strip()):
            try:
                ok = Decimal(0) < Decimal(part) <= Decimal(1)
            except InvalidOperation:
                ok = False
            if not ok:
                raise ValueError(f"{part!r} is not a fraction in (0, 1]; give e.g. 0.4,0.3")
        return value

    @field_validator("paper_balances")
    @classmethod
    def _wallet(cls, value: str) -> str:
        from decimal import Decimal, InvalidOperation

        for part in (p.strip() for p in value.split(",") if p.strip()):
            asset, _, amount = part.partition("=")
            try:
                ok = bool(asset.strip()) and Decimal(amount.strip()).is_finite()
            except InvalidOperation:
                ok = False
            if not ok:
                raise ValueError(f"{part!r} is not ASSET=amount; give e.g. ZUSD=10000,SOL=5")
        return value

    @property
    def backend(self) -> str:
        return "postgres" if self.database_url is not None else "sqlite"

    def postgres_url(self) -> str:
        """The PostgreSQL URL, a secret (never print it); ValueError when the ledger is on SQLite."""
        if self.database_url is None:
            raise ValueError(f"{env_name('database_url')} is not set: the ledger is on SQLite")
        return self.database_url.get_secret_value()

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


def describe(exc: ValidationError) -> str:
    """One line naming every setting that failed, e.g. ``EXECLEDGER_API_PORT: must be at most 65535 (got 70000)``.
    Secret values are never echoed."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "settings"
        message = err["msg"].removeprefix("Value error, ")
        quiet = field in SECRET_SETTINGS or field in ("kraken_url", "kraken_ws_url") or err.get("input") is None
        shown = "" if quiet else f" (got {str(err['input'])[:80]!r})"
        parts.append(f"{env_name(field)}: {message}{shown}")
    return "; ".join(parts)


def known_names() -> frozenset[str]:
    return frozenset(env_name(name) for name in Settings.model_fields) | {CONFIG_FILE_VAR}


def check_config_file(path: Path) -> None:
    """The rules of the optional ``KEY=value`` file, applied to every spelling its parser accepts (``export KEY=``,
    lower case, quotes, spaces): the file must exist and be readable; it may name only known settings (a typo is
    refused, not ignored); it must not be writable by group or others (whoever may edit it chooses where the
    credentials go); and if it sets a credential, not readable by them either (chmod 600). Raises ConfigFileError
    naming ``EXECLEDGER_CONFIG_FILE`` and the problem, never a value."""
    from dotenv import dotenv_values  # the parser pydantic-settings itself reads the file with

    where = f"{CONFIG_FILE_VAR}: {path}"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigFileError(f"{where} does not exist") from None
    except OSError as exc:
        raise ConfigFileError(f"{where} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise ConfigFileError(f"{where} is not a regular file")
    try:
        values = dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{where} cannot be read ({type(exc).__name__})") from None
    names = {key.strip().upper() for key in values}
    unknown = sorted(names - known_names())
    if unknown:
        raise ConfigFileError(f"{where} sets unknown setting(s) {', '.join(unknown)}")
    perms = stat.S_IMODE(mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigFileError(f"{where} is writable by group or others (mode {perms:o}): chmod 600 it")
    if names & {env_name(s) for s in SECRET_SETTINGS} and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigFileError(
            f"{where} holds credentials but is readable by group or others (mode {perms:o}): chmod 600 it"
        )


def load_settings(config_file: Path | str | None = None) -> Settings:
    """Settings from the environment, with an optional ``KEY=value`` file (the same ``EXECLEDGER_*`` names) under
    them; the environment wins. Raises ConfigFileError (the file breaks a rule of ``check_config_file``) or
    pydantic's ValidationError (a value is wrong: ``describe`` it)."""
    source = config_file or os.environ.get(CONFIG_FILE_VAR)
    if not source:
        return Settings()
    path = Path(source)
    check_config_file(path)
    # pydantic-settings takes ``_env_file`` at init time; its typed signature lists only the model's fields.
    return Settings(_env_file=path, _env_file_encoding="utf-8")  # type: ignore[call-arg]
