"""Event store selection: one setting picks embedded SQLite (default) or PostgreSQL for every application."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from execledger.application.orders_app import CommandsApp, OrdersApp
from execledger.infrastructure.settings import Settings


class StoreConfigError(ValueError):
    """The configured database cannot be used; the message says which setting and why (never the password)."""


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    dbname: str
    user: str
    password: str
    schema: str

    def redacted(self) -> str:
        auth = f"{self.user}:***@" if self.password else f"{self.user}@"
        schema = f"?schema={self.schema}" if self.schema else ""
        return f"postgresql://{auth}{self.host}:{self.port}/{self.dbname}{schema}"


SUPPORTED_QUERY = ("schema",)


def parse_postgres_url(url: str) -> PostgresTarget:
    """Parse ``postgresql://user[:password]@host[:port]/dbname[?schema=name]``.

    Every query parameter but ``schema`` is refused (StoreConfigError naming it, never its value): the others were
    silently ignored by some connections and honoured by none consistently (``?options=-csearch_path=other`` ran a
    second trading process beside the first), and nothing else may decide which database or schema a process
    writes. ``schema`` must appear at most once, be non-empty, and be letters, digits and underscores."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        raise StoreConfigError(f"EXECLEDGER_DATABASE_URL must start with postgresql://, got scheme {parts.scheme!r}")
    dbname = parts.path.lstrip("/")
    if not dbname:
        raise StoreConfigError(
            "EXECLEDGER_DATABASE_URL names no database (expected postgresql://user@host:port/dbname)"
        )
    if parts.fragment:
        raise StoreConfigError("EXECLEDGER_DATABASE_URL has a #fragment, which means nothing to a database URL")
    query = parse_qsl(parts.query, keep_blank_values=True)
    unknown = sorted({name for name, _value in query if name not in SUPPORTED_QUERY})
    if unknown:
        named = ", ".join(repr(name[:40]) for name in unknown)  # names only: a value may be a password
        raise StoreConfigError(
            f"EXECLEDGER_DATABASE_URL has the query parameter {named}, which execledger does not support: only "
            "?schema=name (a parameter that was ignored could point connections at another database or schema)"
        )
    schemas = [value for name, value in query if name == "schema"]
    if len(schemas) > 1:
        raise StoreConfigError("EXECLEDGER_DATABASE_URL gives ?schema= more than once")
    if schemas and not schemas[0]:
        raise StoreConfigError("EXECLEDGER_DATABASE_URL has an empty ?schema= (leave it out for the default schema)")
    schema = schemas[0] if schemas else ""
    if schema and not schema.replace("_", "").isalnum():
        raise StoreConfigError(f"schema {schema!r} must be letters, digits and underscores")
    return PostgresTarget(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        dbname=unquote(dbname),
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password or ""),
        schema=schema,
    )


class StoreUnreachable(RuntimeError):
    """The database did not answer; the message names it with the password redacted."""


def prepare_database(target: PostgresTarget) -> None:
    """Connect once (fail fast with a clear error instead of a pool's 30 s wait) and create the URL's schema
    if it does not exist yet (eventsourcing creates tables, not schemas)."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(
            host=target.host,
            port=target.port,
            dbname=target.dbname,
            user=target.user,
            password=target.password,
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            if target.schema:
                # Another process of the deployment may create it at the same moment.
                with contextlib.suppress(psycopg.errors.UniqueViolation):
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(target.schema)))
    except psycopg.OperationalError as exc:
        detail = str(exc).replace(target.password, "***") if target.password else str(exc)
        raise StoreUnreachable(f"PostgreSQL at {target.redacted()} is not reachable: {detail.strip()}") from None


def app_env(settings: Settings, app_name: str) -> dict[str, str]:
    """The eventsourcing env for one application, keys prefixed by its name so apps never share tables or files."""
    prefix = app_name.upper()
    if settings.database_url is None:
        data_dir = Path(settings.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        # One SQLite file per application: eventsourcing.sqlite's table names are fixed (eventsourcing-notes P2).
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            f"{prefix}_SQLITE_DBNAME": str(data_dir / f"{app_name.lower()}.sqlite"),
            f"{prefix}_SQLITE_LOCK_TIMEOUT": "10",
        }
    target = parse_postgres_url(settings.database_url.get_secret_value())
    prepare_database(target)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        f"{prefix}_POSTGRES_DBNAME": target.dbname,
        f"{prefix}_POSTGRES_HOST": target.host,
        f"{prefix}_POSTGRES_PORT": str(target.port),
        f"{prefix}_POSTGRES_USER": target.user,
        # Mandatory even when empty (eventsourcing-notes P9).
        f"{prefix}_POSTGRES_PASSWORD": target.password,
        f"{prefix}_POSTGRES_CONNECT_TIMEOUT": "5",
        f"{prefix}_POSTGRES_POOL_SIZE": str(settings.db_pool_size),
        f"{prefix}_POSTGRES_MAX_OVERFLOW": str(settings.db_max_overflow),
    }
    if target.schema:
        env[f"{prefix}_POSTGRES_SCHEMA"] = target.schema
    return env


def open_orders_app(settings: Settings) -> OrdersApp:
    """The Orders event store as the settings select it. Close it with ``app.close()``."""
    env = app_env(settings, OrdersApp.name)
    recorder = (
        "orderstore_postgres:PostgresOrdersRecorder" if settings.database_url else "orderstore:SQLiteOrdersRecorder"
    )
    # eventsourcing's recorder plus the retired-orders table (infrastructure/orderstore.py).
    env[f"{OrdersApp.name.upper()}_PROCESS_RECORDER_TOPIC"] = f"execledger.infrastructure.{recorder}"
    if settings.database_url:
        # eventsourcing.postgres's factory, which also closes the connection the recorder keeps for its saves.
        env["PERSISTENCE_MODULE"] = "execledger.infrastructure.orderstore_postgres:OrdersPostgresFactory"
    # The same JSON, decoded with orjson: start-up decodes every stored event of the orders it holds.
    env[f"{OrdersApp.name.upper()}_TRANSCODER_TOPIC"] = "execledger.infrastructure.transcoder:OrjsonTranscoder"
    # The same stored events, mapped with less Python a save (the append path, issue 18).
    env[f"{OrdersApp.name.upper()}_MAPPER_TOPIC"] = "execledger.infrastructure.transcoder:OrjsonMapper"
    return _open(OrdersApp, env)


def open_commands_app(settings: Settings) -> CommandsApp:
    """The Commands log (the inbox every process writes operator commands to). Close it with ``app.close()``."""
    return _open(CommandsApp, app_env(settings, CommandsApp.name))


def _open(app_class, env: dict[str, str], attempts: int = 10):
    """Construct an application. Processes of one deployment starting together race to create the same tables
    (PostgreSQL refuses concurrent CREATE TABLE of one name; eventsourcing's tracking-table migration writes a
    marker row): the loser sees an error about what the winner just created, and simply opens again."""
    import time

    from eventsourcing.persistence import PersistenceError

    for attempt in range(attempts):
        try:
            return app_class(env=env)
        except PersistenceError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
