"""Logging for every execledger process: configured once at start from ``EXECLEDGER_LOG_*``.

- ``EXECLEDGER_LOG_LEVEL`` (DEBUG, INFO, WARNING, ERROR; default INFO), ``EXECLEDGER_LOG_FORMAT`` (``text``: one
  line ``2026-12-01T00:40:20.123Z INFO logger message key=value ...``; ``json``: one JSON object per line with
  ``time``, ``level``, ``logger``, ``message`` and the context ids), ``EXECLEDGER_LOG_FILE`` (append there instead
  of stderr).
- ``log_context(signal_id=..., order_id=...)`` puts ids on every line logged inside it (a ``contextvars``
  variable, so each asyncio task keeps its own); explicit ``extra=`` values win over the context.
- The same WARNING (or worse) line repeated within ``repeat_window_s`` is written once; the next one after the
  window carries ``repeated=N`` (how many were held back), so an outage reads as a few lines, not thousands.
- Every configured secret (API secret and key, bearer token, database password, notification URLs) is replaced by
  ``***`` in messages, arguments and tracebacks before any handler writes them.

Built on the standard library's ``logging`` with python-json-logger's formatter for JSON (a well-kept library: the
JSON encoding of arbitrary ``extra`` values and of exceptions is its job, not ours).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# The ids a line may carry, in the order the text format prints them.
CONTEXT_KEYS = ("signal_id", "order_id", "role", "cl_ord_id", "txid", "event", "rule", "refusal", "repeated")

# A mutable default (B039) is safe here: the dict is never mutated, each change sets a new one.
_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("execledger_log_context", default={})  # noqa: B039

_MARK = "_execledger_handler"  # set on the handler we install, so a second configure replaces only ours


@contextlib.contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Add ids (``signal_id``, ``order_id``, ``cl_ord_id``, ``txid``, ...) to every log line inside the block.

    Nested blocks add to (and may override) the outer ids; ``None`` values are left out."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the ids of the current ``log_context`` onto the record (without overwriting explicit extras)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class RedactFilter(logging.Filter):
    """Replaces each secret by ``***`` in the rendered message and in the traceback text."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        # Longest first, so a secret that contains another is replaced whole. Very short values are not secrets
        # worth hunting (and would mangle ordinary text).
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
            record.exc_info = None  # the formatter would render the traceback again, unredacted
        return True


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def one_line(text: object, limit: int = 500) -> str:
    """``text`` as it may go into a line: control characters and lone surrogates written as ``\\xNN`` /
    ``\\uNNNN`` escapes (a refused signal's own text must not start a forged line), at most ``limit``
    characters (then ``...``)."""
    escaped = _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], str(text))
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


_DIGITS = re.compile(r"\d+(?:\.\d+)?")


class RepeatFilter(logging.Filter):
    """Collapses identical WARNING+ lines (same logger, level, context ids and text, numbers aside) within
    ``window_s``: the first is written, the rest are counted, and the first one after the window says how many were
    held back (``repeated=N``)."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic, max_keys: int = 1000):
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._seen: OrderedDict[tuple, list[float | int]] = OrderedDict()  # key -> [window start, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        ids = tuple(getattr(record, k, None) for k in CONTEXT_KEYS)  # the same text about another order is news
        # Numbers (durations, counts) vary between otherwise identical lines: "failed after 0.002s" repeats.
        key = (record.name, record.levelno, _DIGITS.sub("#", record.getMessage()), ids)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.repeated = int(seen[1])
        self._seen[key] = [now, 0]
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each line (a test runner may swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger> <message> key=value ...``: one line (tracebacks follow on their own lines)."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_KEYS if getattr(record, k, None) is not None)
        line = f"{_iso(record.created)} {record.levelname:<7} {record.name} {record.getMessage()}"
        if ids:
            line += f"  {ids}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, then the context
    ids and any other ``extra`` fields."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        fields: dict[str, Any] = {}
        super().add_fields(fields, record, message_dict)
        log_data["time"] = _iso(record.created)  # first, so a line reads in time order
        log_data.update(fields)


def secrets_of(settings: Any) -> list[str]:
    """Every secret value in ``settings`` (a ``Settings``): what the redaction filter hunts for."""
    from execledger.infrastructure.eventstore import StoreConfigError, parse_postgres_url

    found: list[str] = []
    for name in ("kraken_secret", "kraken_key", "api_token", "notify_webhook_urls", "notify_apprise_urls"):
        value = getattr(settings, name, None)
        if value is not None:
            raw = value.get_secret_value()
            found += [raw, *(part.strip() for part in raw.split(","))]
    secret_file = getattr(settings, "kraken_secret_file", None)
    if secret_file is not None:
        with contextlib.suppress(OSError):
            found.append(Path(secret_file).read_text().strip())
    if getattr(settings, "database_url", None) is not None:
        with contextlib.suppress(StoreConfigError):
            password = parse_postgres_url(settings.database_url.get_secret_value()).password
            if password:
                found.append(password)
    return found


def configure_logging(
    *,
    level: str = "INFO",
    fmt: str = "text",
    file: Path | str | None = None,
    secrets: Iterable[str] = (),
    repeat_window_s: float = 60.0,
    stream: Any = None,
) -> logging.Handler:
    """Install execledger's handler on the root logger (replacing one installed earlier; other handlers, such as a
    test runner's, are left alone) and return it."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r}: expected text or json")
    handler: logging.Handler
    if file is not None:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
    elif stream is not None:
        handler = logging.StreamHandler(stream)
    else:
        handler = _StderrHandler()
    setattr(handler, _MARK, True)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    # Order matters: redact first (later filters render the message), add the ids, then collapse repeats.
    handler.addFilter(RedactFilter(secrets))
    handler.addFilter(ContextFilter())
    handler.addFilter(RepeatFilter(repeat_window_s))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.getLevelName(level.upper()))
    # One access line per HTTP request is noise at INFO; DEBUG shows them.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
    return handler


def configure_from_settings(settings: Any, **kwargs: Any) -> logging.Handler:
    """``configure_logging`` from ``EXECLEDGER_LOG_LEVEL``, ``_FORMAT`` and ``_FILE``, redacting the secrets."""
    return configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        file=settings.log_file,
        secrets=secrets_of(settings),
        **kwargs,
    )
