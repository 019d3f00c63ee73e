"""The one middleware every route passes, in this order (each refusal in the one error shape of ``jsonio``):

1. **Host** (421): a request that reached us over loopback must name a loopback host and our port. A browser page
   whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name and is refused. Over the network the
   bearer token (mandatory off loopback) is the guard: a browser never sends it by itself.
2. **Origin** (403): when a browser says where the page came from, it must be this API itself. Cross-site pages
   (CSRF), other local ports and ``Origin: null`` are refused.
3. **Bearer token** (401) when one is configured, except for routes declared ``public``. The web console's routes
   (``console=True``, under ``/console``) take its session instead: an HttpOnly ``SameSite=Strict`` cookie given
   only for the token, and on every POST the session's CSRF token in a header (``console/sessions.py``). No
   ``/v1`` route accepts that cookie.
4. **JSON only** (415): a request with a body must say ``Content-Type: application/json`` (UTF-8): a browser cannot
   send that cross-site without a CORS preflight, which this API never grants.
5. **Body limits** (413, 400): ``jsonio.MAX_BODY_BYTES``, nesting ``jsonio.MAX_DEPTH``, strict JSON; a route that
   asks for it gets its body validated against its model (422, one error per field).
6. **Errors**: a query, path or body problem is a 4xx naming the field; anything unexpected a 500 that names the
   exception type only (the details go to the log).
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import ValidationError

from execledger.infrastructure.api.console.sessions import console_access
from execledger.infrastructure.api.context import CTX
from execledger.infrastructure.api.jsonio import JSON_BODY, MAX_BODY_BYTES, ApiError, error_response, parse_body
from execledger.infrastructure.api.routes import VALID_BODY, Route
from execledger.infrastructure.net import is_loopback
from execledger.infrastructure.readmodels.queries import BadQuery

log = logging.getLogger("execledger.api")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ROUTE_INFO = web.AppKey("route_info", dict)  # aiohttp route -> our Route declaration


def _host_and_port(value: str) -> tuple[str, int | None] | None:
    """``example.com:8080`` -> (example.com, 8080); None when it is not a host[:port]."""
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.path or parts.query or parts.fragment or parts.username is not None:
        return None
    return parts.hostname, port


def check_host(request: web.Request) -> tuple[str, int | None] | None:
    """Refuse (421) a loopback connection whose Host is not a loopback name with our port."""
    header = request.headers.get("Host")
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    local, local_port = (sockname[0], sockname[1]) if isinstance(sockname, tuple) else (None, None)
    if header is None:
        return None  # HTTP/1.0 without Host: not a browser
    parsed = _host_and_port(header)
    if parsed is None:
        raise ApiError(400, "the Host header is not host[:port]", field="Host", rule="malformed")
    if local is not None and is_loopback(local):
        host, port = parsed
        if not is_loopback(host) or (port or 80) != local_port:
            raise ApiError(
                421,
                f"this API answers only to a loopback host on port {local_port}, not {header!r}",
                field="Host",
                rule="host_not_bound",
            )
    return parsed


def check_origin(request: web.Request, host: tuple[str, int | None] | None) -> None:
    """Refuse (403) a browser request from any page but this API's own origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    parts = urlsplit(origin)
    try:
        origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        origin_port = None
    if host is None:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        host = (sockname[0], sockname[1]) if isinstance(sockname, tuple) else None
    same = (
        host is not None
        and parts.scheme in ("http", "https")
        and parts.hostname == host[0]
        and (host[1] is None or origin_port == host[1])
    )
    if not same:
        raise ApiError(403, f"cross-origin request from {origin[:100]!r} refused", field="Origin", rule="cross_origin")


def check_token(request: web.Request, token: str | None, route: Route | None) -> None:
    if token is None or (route is not None and route.public):
        return
    supplied = request.headers.get("Authorization", "")
    ok = supplied.isascii() and hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())
    if not ok:
        error = ApiError(401, "missing or wrong bearer token", field="Authorization", rule="bearer_token")
        error.headers["WWW-Authenticate"] = "Bearer"
        raise error


async def read_body(request: web.Request, route: Route | None) -> None:
    """Content type, size, nesting and JSON syntax of a body; then the route's own model if it asks."""
    has_type = "Content-Type" in request.headers
    if not request.body_exists and not has_type:
        return  # a command without a body
    if request.content_type != "application/json" or (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise ApiError(
            415,
            f"send Content-Type: application/json (UTF-8), not {request.headers.get('Content-Type', 'none')!r}",
            field="Content-Type",
            rule="json_only",
        )
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes", field="body", rule="too_large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes", field="body", rule="too_large") from None
    request[JSON_BODY] = parse_body(raw)
    if route is not None and route.validate and route.body is not None:
        try:
            request[VALID_BODY] = route.body.model_validate(request[JSON_BODY])
        except ValidationError as exc:
            raise BadBody(exc) from None


class BadBody(Exception):
    def __init__(self, exc: ValidationError):
        self.errors = [
            {"field": ".".join(map(str, e["loc"])) or "body", "rule": e["type"], "message": e["msg"]}
            for e in exc.errors()
        ]


@web.middleware
async def guard(request: web.Request, handler):
    ctx = request.app[CTX]
    route = request.app[ROUTE_INFO].get(request.match_info.route)
    try:
        host = check_host(request)
        check_origin(request, host)
        refused = None
        if route is not None and route.console:
            refused = console_access(request, ctx.token, route)  # a redirect to the login page, or None
        else:
            check_token(request, ctx.token, route)
        if refused is None and request.method not in SAFE_METHODS:
            await read_body(request, route)
        response = refused if refused is not None else await handler(request)
    except ApiError as exc:
        response = exc.response()
    except BadQuery as exc:
        response = error_response(400, "invalid query", errors=[e.__dict__ for e in exc.errors])
    except BadBody as exc:
        response = error_response(422, "invalid body", errors=exc.errors)
    except web.HTTPException as exc:  # aiohttp's own: 404, 405, 413 ... in the one error shape
        response = error_response(exc.status, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception as exc:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = error_response(500, f"internal error: {type(exc).__name__}")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response
