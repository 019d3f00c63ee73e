"""JSON in and out of the HTTP API: one encoder (Decimals as exact text), one error shape, one body reader.

Bodies are read once by the guard (``guard.py``) with limits: at most ``MAX_BODY_BYTES``, nested at most
``MAX_DEPTH`` arrays/objects deep, strict JSON (``NaN``/``Infinity`` refused, integers at most ``MAX_INT_DIGITS``
digits), UTF-8. Every refusal is an ``ApiError`` naming ``body`` and the rule.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from aiohttp import web

from execledger.domain.values import plain

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 8  # a signal is 2 deep (tags); JSON's own recursion limit must never be the one that answers
MAX_INT_DIGITS = 30

JSON_BODY = web.RequestKey("json_body", object)
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


class ApiError(Exception):
    """An answer other than success, raised anywhere below the guard and rendered in the one error shape."""

    def __init__(self, status: int, message: str, *, field: str | None = None, rule: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = [{"field": field, "rule": rule or "invalid", "message": message}] if field else None
        self.extra = extra
        self.headers: dict[str, str] = {}

    def response(self) -> web.Response:
        body = {"errors": self.errors} if self.errors else {}
        resp = error_response(self.status, self.message, **body, **self.extra)
        resp.headers.update(self.headers)
        return resp


def default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, set):
        return sorted(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=default), status=status, content_type="application/json", headers=headers
    )


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status)


def nesting_depth(raw: bytes) -> int:
    """The deepest array/object nesting of a JSON text, counted without parsing it (strings skipped)."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of more than {MAX_INT_DIGITS} digits")
    return int(text)


class DuplicateKey(ValueError):
    """One JSON object names a key twice: which value was meant is not ours to guess."""

    def __init__(self, key: str):
        super().__init__(f"the key {key!r} appears twice in one object")
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a JSON object, refusing a key it names twice (``json`` would keep the last value
    silently, so ``{"quantity": "1", "quantity": "100"}`` traded 100)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return obj


def parse_body(raw: bytes) -> Any:
    """A request body's JSON value, or ApiError (400 naming ``body``)."""
    if not raw.strip():
        raise ApiError(400, "the body is empty: send a JSON object", field="body", rule="body_required")
    if nesting_depth(raw) > MAX_DEPTH:
        raise ApiError(400, f"JSON nested deeper than {MAX_DEPTH} levels", field="body", rule="too_deep")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8", field="body", rule="not_utf8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int, object_pairs_hook=_unique_keys)
    except DuplicateKey as exc:
        raise ApiError(400, f"the body is ambiguous: {exc}", field=exc.key, rule="duplicate_key") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field="body", rule="json"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"the body is not acceptable JSON: {exc}", field="body", rule="json") from None


def body_of(request: web.Request) -> Any:
    """The parsed JSON body of this request (the guard read it); ApiError 400 if it had none."""
    if JSON_BODY not in request:
        raise ApiError(400, "this route takes a JSON body", field="body", rule="body_required")
    return request[JSON_BODY]
