"""The web console's sessions: how a browser holds the API's authority without ever holding the token in script.

- When ``EXECLEDGER_API_TOKEN`` is set, ``POST /console/login`` ``{"token": ...}`` (JSON, so the guard's
  same-origin and JSON-only rules apply) compares it in constant time with the configured token and answers with a
  fresh session: cookie ``execledger_console`` (``HttpOnly``: no script reads it; ``SameSite=Strict``: no other
  site's page sends it; ``Path=/console``: no ``/v1`` route ever sees it; ``Secure`` over https). Without a token
  (a loopback bind, where the API itself is open) the first console page gives the session by itself.
- Every console POST must carry the session's CSRF token (32 random bytes, in the page's ``<meta name=csrf-token>``)
  in the ``X-CSRF-Token`` header, compared in constant time: 401 without a session, 403 with a wrong token. This is
  on top of the guard's Origin and JSON-only checks, which the console passes like any other route.
- Sessions live in this process's memory (at most ``MAX_SESSIONS``, oldest dropped first) and end after
  ``SESSION_TTL_S`` or at ``POST /console/logout``; a restart logs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from execledger.infrastructure.api.jsonio import ApiError

if TYPE_CHECKING:
    from execledger.infrastructure.api.routes import Route

COOKIE = "execledger_console"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_S = 12 * 3600.0
MAX_SESSIONS = 256
LOGIN_PATH = "/console/login"


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    expires: float  # time.monotonic()


class ConsoleSessions:
    """Session id -> Session, bounded and expiring (monotonic time: a wall-clock step ends nothing early)."""

    def __init__(self, ttl_s: float = SESSION_TTL_S, limit: int = MAX_SESSIONS, clock=time.monotonic):
        self.ttl_s, self.limit, self.clock = ttl_s, limit, clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), self.clock() + self.ttl_s)
        self._sessions[session.id] = session
        while len(self._sessions) > self.limit:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is not None and session.expires <= self.clock():
            del self._sessions[session_id]
            return None
        return session

    def drop(self, session_id: str | None) -> None:
        self._sessions.pop(session_id or "", None)

    def __len__(self) -> int:
        return len(self._sessions)


SESSIONS = web.AppKey("console_sessions", ConsoleSessions)
SESSION = web.RequestKey("console_session", Session)


def sessions_of(app: web.Application) -> ConsoleSessions:
    return app[SESSIONS]  # set by pages.install


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.id,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        max_age=int(SESSION_TTL_S),
    )


def console_access(request: web.Request, token: str | None, route: Route) -> web.StreamResponse | None:
    """The console's stand-in for the bearer token (called by the guard for ``console`` routes).

    Returns None to go on (``request[SESSION]`` is set when there is a session), a redirect to the login page for
    a page asked without a session while a token is configured; raises ApiError 401/403 for a POST without a
    session or with a wrong CSRF token."""
    session = sessions_of(request.app).get(request.cookies.get(COOKIE))
    if session is not None:
        request[SESSION] = session
    if route.public:
        return None
    if request.method in ("GET", "HEAD"):
        if session is None and token is not None:
            if route.html:
                return web.Response(status=303, headers={"Location": f"{LOGIN_PATH}?next={quote(request.path_qs)}"})
            raise ApiError(401, "log in to the console first", field="Cookie", rule="console_session")
        return None
    if session is None:
        raise ApiError(401, "log in to the console first", field="Cookie", rule="console_session")
    supplied = request.headers.get(CSRF_HEADER, "")
    if not (supplied.isascii() and hmac.compare_digest(supplied.encode(), session.csrf.encode())):
        raise ApiError(403, "missing or wrong CSRF token", field=CSRF_HEADER, rule="csrf_token")
    return None


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a console path of this origin only (never ``//other.site`` or a URL)."""
    if value and value.startswith("/console") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/signals"


def token_matches(supplied: object, token: str | None) -> bool:
    """The login form's token against the configured one (constant time); without one, anything logs in."""
    if token is None:
        return True
    return isinstance(supplied, str) and supplied.isascii() and hmac.compare_digest(supplied.encode(), token.encode())
