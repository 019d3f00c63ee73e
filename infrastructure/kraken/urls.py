"""The Kraken origins the adapter may talk to, checked before anything connects (pure string checks, no I/O).

Sources: REFERENCE.md section 2 (REST base ``https://api.kraken.com/0``) and section 6.1 (WS v2 private endpoint
``wss://ws-auth.kraken.com/v2``); the built-in simulator serves WS v2 at ``ws://HOST:PORT/v2`` beside its REST
origin (``infrastructure/simulator/server.py``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from execledger.infrastructure.net import is_loopback

KRAKEN_REST_ORIGIN = "https://api.kraken.com"  # REFERENCE.md 2: base URL https://api.kraken.com/0
KRAKEN_WS_AUTH_URL = "wss://ws-auth.kraken.com/v2"  # REFERENCE.md 6.1: v2 primary, private (auth)
KRAKEN_WS_PUBLIC_URL = "wss://ws.kraken.com/v2"  # REFERENCE.md 6.1: v2 public (market data)


def _port_ok(parts) -> bool:
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return True


def check_base_url(url: str) -> str:
    """The origin to talk to (``https://api.kraken.com`` or ``http://127.0.0.1:8765``), normalised without a
    trailing slash. Raises ValueError for anything that is not an http(s) origin, and for plain ``http://`` to a
    host that is not loopback: credentials and orders never travel unencrypted."""
    parts = urlsplit(url.strip())
    if parts.username is not None or parts.password is not None:  # checked first: never echo a password
        raise ValueError("must not carry user or password in the URL (credentials go in EXECLEDGER_KRAKEN_KEY)")
    if parts.scheme not in ("http", "https") or not parts.hostname or not _port_ok(parts):
        raise ValueError(f"{url!r} is not an http(s) origin such as {KRAKEN_REST_ORIGIN}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r} must be an origin only (no path such as /0)")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"refusing plain http to non-loopback host {parts.hostname!r}: use https")
    return f"{parts.scheme}://{parts.netloc}"


def check_ws_url(url: str) -> str:
    """``wss://`` anywhere; plain ``ws://`` only to a loopback host such as the simulator. Raises ValueError.
    (aiohttp also takes ``https://``/``http://`` for a WebSocket; they follow the same rule.)"""
    parts = urlsplit(url.strip())
    if parts.username is not None or parts.password is not None:  # checked first: never echo a password
        raise ValueError("must not carry user or password in the URL")
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname or not _port_ok(parts):
        raise ValueError(f"{url!r} is not a ws(s) URL such as {KRAKEN_WS_AUTH_URL}")
    if parts.scheme in ("ws", "http") and not is_loopback(parts.hostname):
        raise ValueError(f"refusing unencrypted WebSocket to non-loopback host {parts.hostname!r}: use wss")
    return url.strip()


def derive_ws_url(rest_origin: str) -> str | None:
    """The WS v2 auth endpoint that belongs to a checked REST origin, or None when it cannot be known.

    Kraken's own origin -> ``wss://ws-auth.kraken.com/v2``; a plain-http loopback origin is the simulator's layout
    (``ws://HOST:PORT/v2``). Any other origin (a proxy, a TLS-terminating tunnel) needs the WS URL spelled out."""
    origin = check_base_url(rest_origin)
    if origin == KRAKEN_REST_ORIGIN or origin == KRAKEN_REST_ORIGIN + ":443":
        return KRAKEN_WS_AUTH_URL
    parts = urlsplit(origin)
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return f"ws://{parts.netloc}/v2"
    return None


def derive_public_ws_url(ws_auth_url: str | None) -> str | None:
    """The public WS v2 endpoint (``ticker``/``trade``) beside a checked private one, or None when it cannot be
    known (then prices come from REST ``Ticker``). Kraken's ``wss://ws-auth.kraken.com/v2`` ->
    ``wss://ws.kraken.com/v2``; the simulator's ``ws://HOST:PORT/v2`` -> ``ws://HOST:PORT/public/v2``."""
    if not ws_auth_url:
        return None
    url = check_ws_url(ws_auth_url).rstrip("/")
    if url == KRAKEN_WS_AUTH_URL:
        return KRAKEN_WS_PUBLIC_URL
    parts = urlsplit(url)
    if parts.scheme == "ws" and parts.path == "/v2" and parts.hostname and is_loopback(parts.hostname):
        return f"ws://{parts.netloc}/public/v2"
    return None
