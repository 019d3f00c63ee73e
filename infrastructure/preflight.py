"""Start-up checks: every configuration problem is found before anything starts, and reported as one line.

``execledger run`` and ``execledger config check`` call the same functions, in this order, before a trading
task, a writer lock, a socket or a store file exists:

1. ``load`` - the settings themselves (``settings.py`` validates each value; the config-file rules);
2. ``check_service`` - what the role needs from this machine: credentials that parse (key, base64 secret, a
   private secret file), a token for a non-loopback bind, a bind that is free and local, a usable store;
3. ``check_online`` - one signed read-only call (``Balance``): the key is accepted and the TLS certificate of the
   Kraken origin verifies. ``run`` refuses to start on a refusal or a TLS failure but starts through an outage
   (recovery retries); ``config check --online`` refuses on any failure.

Each failure is a ``ConfigError`` whose text starts with the setting to fix (``EXECLEDGER_API_PORT: ...``).
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from execledger.infrastructure.net import is_loopback
from execledger.infrastructure.settings import ConfigFileError, Settings, describe, env_name, load_settings

ROLES_THAT_TRADE = ("all", "trading")
ROLES_WITH_API = ("all", "api")


class ConfigError(Exception):
    """A configuration the service cannot run with. ``str()`` is one line naming the setting; never a secret."""

    def __init__(self, setting: str | None, message: str):
        self.setting = setting
        super().__init__(f"{setting}: {message}" if setting else message)


def load(config_file: Path | str | None = None) -> Settings:
    """The settings, or ConfigError (one line naming every bad setting)."""
    try:
        return load_settings(config_file)
    except ConfigFileError as exc:
        raise ConfigError(None, str(exc)) from None
    except ValidationError as exc:
        raise ConfigError(None, describe(exc)) from None


def check_service(settings: Settings, role: str = "all") -> None:
    """Every offline check ``execledger run --role ROLE`` needs; raises the first ConfigError. Creates nothing."""
    if role in ROLES_THAT_TRADE and settings.kraken_url:
        check_credentials(settings)
    if role in ROLES_WITH_API:
        check_api_bind(settings)
    check_store(settings)


def check_credentials(settings: Settings):
    """The Kraken credentials as the adapter will read them (format only: ``check_online`` asks Kraken).
    Returns ``KrakenCredentials``."""
    from execledger.infrastructure.kraken.auth import InvalidSecret, decode_secret
    from execledger.infrastructure.kraken.credentials import CredentialsError, KrakenCredentials, read_secret_file

    needed = f"is not set (needed to trade on {env_name('kraken_url')}={settings.kraken_url})"
    key = settings.kraken_key.get_secret_value().strip() if settings.kraken_key else ""
    if settings.kraken_key is None:
        raise ConfigError(env_name("kraken_key"), needed)
    if not key or any(c.isspace() for c in key):
        raise ConfigError(env_name("kraken_key"), "is empty or contains whitespace")
    if settings.kraken_secret is not None and settings.kraken_secret_file is not None:
        raise ConfigError(env_name("kraken_secret_file"), f"set it or {env_name('kraken_secret')}, not both")
    if settings.kraken_secret_file is not None:
        name = env_name("kraken_secret_file")
        try:
            secret = read_secret_file(settings.kraken_secret_file)
        except CredentialsError as exc:
            raise ConfigError(name, str(exc)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(name, f"{settings.kraken_secret_file} cannot be read ({type(exc).__name__})") from None
    elif settings.kraken_secret is not None:
        name, secret = env_name("kraken_secret"), settings.kraken_secret
    else:
        raise ConfigError(env_name("kraken_secret"), f"{needed} (or {env_name('kraken_secret_file')})")
    try:
        decode_secret(secret.get_secret_value())
    except InvalidSecret as exc:
        raise ConfigError(name, f"{exc} (copy it from Kraken's API key page as shown)") from None
    return KrakenCredentials(key=key, secret=secret)


def check_api_bind(settings: Settings) -> None:
    """A non-loopback bind needs a token; the address must be this machine's and the port free. The probe binds
    and closes at once (with SO_REUSEADDR, like the server will), so nothing keeps listening."""
    host, port = settings.api_host, settings.api_port
    if not is_loopback(host) and settings.api_token is None:
        raise ConfigError(
            env_name("api_token"),
            f"is required to bind the API to {host} (not loopback): anyone who reaches it could trade",
        )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(env_name("api_host"), f"{host!r} does not resolve ({exc})") from None
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise bind_error(host, port, exc) from None


def bind_error(host: str, port: int, exc: OSError) -> ConfigError:
    """The one-line ConfigError for a bind that failed (also used when the real bind loses a race)."""
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(env_name("api_port"), f"{host}:{port} is already in use by another process")
    if exc.errno == errno.EACCES:
        return ConfigError(env_name("api_port"), f"{host}:{port} needs privileges this process does not have")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(env_name("api_host"), f"{host} is not an address of this machine")
    return ConfigError(env_name("api_host"), f"cannot bind {host}:{port} ({exc.strerror or exc})")


@dataclass(frozen=True)
class LedgerLocation:
    where: str  # the SQLite file, or the redacted PostgreSQL URL and schema
    exists: bool


def describe_ledger(settings: Settings) -> tuple[str, str]:
    """The setting that selects the ledger and where it points (the data dir, or the redacted URL and schema),
    for messages; connects to nothing."""
    if settings.database_url is None:
        return env_name("data_dir"), str(Path(settings.data_dir).absolute())
    from execledger.infrastructure.eventstore import StoreConfigError, parse_postgres_url

    try:
        target = parse_postgres_url(settings.postgres_url())
    except StoreConfigError:
        return env_name("database_url"), "an unusable URL"
    return env_name("database_url"), f"{target.redacted()} (schema {target.schema or 'public'})"


def check_store(settings: Settings) -> None:
    """SQLite: the data directory is (or can be made) a writable directory. PostgreSQL: the URL parses and the
    server answers. Creates nothing."""
    ledger_location(settings)


def ledger_location(settings: Settings) -> LedgerLocation:
    """Where the ledger is and whether it exists, without creating it (ConfigError if the store is unusable)."""
    from execledger.application.orders_app import OrdersApp

    if settings.database_url is None:
        data_dir = Path(settings.data_dir)
        name = env_name("data_dir")
        if data_dir.exists() and not data_dir.is_dir():
            raise ConfigError(name, f"{data_dir} exists and is not a directory")
        existing = next((p for p in (data_dir, *data_dir.absolute().parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(name, f"{existing or data_dir} is not writable by this user")
        store = data_dir / f"{OrdersApp.name.lower()}.sqlite"
        return LedgerLocation(str(store.absolute()), store.is_file())  # absolute: the cwd may be the mistake
    return _postgres_location(settings, f"{OrdersApp.name.lower()}_events")


def _postgres_location(settings: Settings, table: str) -> LedgerLocation:
    import psycopg

    from execledger.infrastructure.eventstore import StoreConfigError, parse_postgres_url

    name = env_name("database_url")
    try:
        target = parse_postgres_url(settings.postgres_url())
    except StoreConfigError as exc:
        raise ConfigError(name, str(exc).removeprefix(f"{name} ")) from None
    schema = target.schema or "public"
    try:
        with psycopg.connect(
            host=target.host,
            port=target.port,
            dbname=target.dbname,
            user=target.user,
            password=target.password,
            connect_timeout=5,
            autocommit=True,
        ) as conn:
            found = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s", (schema, table)
            ).fetchone()
    except psycopg.Error as exc:
        detail = " ".join(str(exc).split())
        if target.password:
            detail = detail.replace(target.password, "***")
        raise ConfigError(name, f"PostgreSQL at {target.redacted()} is not usable: {detail}") from None
    return LedgerLocation(f"{target.redacted()} (schema {schema})", found is not None)


async def check_online(settings: Settings, *, strict: bool, timeout_s: float = 10.0) -> str | None:
    """One signed read-only call (``Balance``) to ``EXECLEDGER_KRAKEN_URL``. Raises ConfigError when Kraken
    refuses the key (EAPI:Invalid key, permission denied: REFERENCE.md 4) or the TLS handshake fails. Any other
    failure (timeout, 5xx, EService:Unavailable) raises too when ``strict``, else it is returned as a warning:
    an outage at start is for recovery to ride out, not a configuration error."""
    from execledger.infrastructure.kraken.credentials import CredentialsError
    from execledger.infrastructure.kraken.errors import KrakenCallFailed, KrakenTransportError, Transport
    from execledger.infrastructure.kraken.rest import KrakenRestClient

    credentials = check_credentials(settings)
    url = env_name("kraken_url")
    if settings.kraken_url is None:
        raise ConfigError(url, "is not set: there is no venue to call")
    async with KrakenRestClient(
        settings.kraken_url, credentials, data_dir=Path(settings.data_dir), timeout_s=timeout_s
    ) as rest:
        try:
            await rest.validate_credentials()
        except CredentialsError as exc:
            raise ConfigError(env_name("kraken_key"), str(exc)) from None
        except KrakenTransportError as exc:
            if exc.kind is Transport.TLS_FAILED:
                raise ConfigError(url, f"{exc.description} (certificates are always verified)") from None
            if strict:
                raise ConfigError(url, f"Kraken did not answer the signed check: {exc.description}") from None
            return f"{url}: Kraken did not answer the signed check ({exc.description}); starting anyway"
        except KrakenCallFailed as exc:
            if strict:
                raise ConfigError(url, f"Kraken refused the signed check: {exc.description}") from None
            return f"{url}: the signed check failed ({exc.description}); starting anyway"
    return None
