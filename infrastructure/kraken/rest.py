"""``KrakenRestClient``: one signed or public Kraken REST call per method call, on aiohttp.

It signs (auth.py), takes the nonce (nonce.py), waits for the REST counter (ratelimit.py), asks the circuit breaker
(breaker.py) and turns every failure into one of the exceptions of errors.py, classified by the policy table.
Retrying is the adapter's business, except Kraken's one documented case: a read refused for ``EAPI:Invalid nonce``
is sent once more with a fresh nonce.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp
import orjson
from yarl import URL

from execledger.application.ports import ErrorClass
from execledger.infrastructure.kraken.auth import Signer
from execledger.infrastructure.kraken.breaker import CallKind, CircuitBreaker
from execledger.infrastructure.kraken.credentials import CredentialsError, KrakenCredentials
from execledger.infrastructure.kraken.errors import (
    BreakerOpen,
    CallWithdrawn,
    Hint,
    KrakenTransportError,
    KrakenVenueError,
    Transport,
    is_warning,
    trips_breaker,
)
from execledger.infrastructure.kraken.nonce import PersistentNonce, nonce_path
from execledger.infrastructure.kraken.ratelimit import RestCallLimiter
from execledger.infrastructure.kraken.urls import check_base_url

log = logging.getLogger("execledger.kraken.rest")

USER_AGENT = "execledger/0.1 (Kraken Spot adapter; aiohttp)"
FORM = "application/x-www-form-urlencoded"


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch  # the characters quote_plus leaves as they are


def _form_text(item: Any) -> str:
    """A key or value as ``urlencode`` writes it (``quote_plus`` of its bytes or of ``str()`` of it), without
    quoting what needs none."""
    if type(item) is str:
        return item if _PLAIN(item) else quote_plus(item)
    if type(item) is int:
        return str(item)  # digits and a sign: nothing to quote
    return quote_plus(item if isinstance(item, bytes) else str(item))


def form_body(nonce: int, params: dict[str, Any]) -> str:
    """``urlencode({"nonce": nonce, **params})``: the same text, built without quoting what needs none."""
    if "nonce" in params:
        return urlencode({"nonce": nonce, **params})
    return "&".join([f"nonce={nonce}", *[f"{_form_text(k)}={_form_text(v)}" for k, v in params.items()]])


_LONG_NUMBER = re.compile(rb"[0-9]{19}").search  # a number that may not fit 64 bits (orjson would make it a float)


def decode_answer(body: bytes) -> Any:
    """An answer's JSON, the values ``json.loads`` gives: orjson, or the standard library for what orjson refuses
    (NaN, UTF-16 or UTF-32) and for a body with a run of 19 digits, where orjson would silently turn an integer
    past 64 bits into a float (ijl/orjson#308). ValueError when neither takes it."""
    if _LONG_NUMBER(body) is None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def _tls_reason(exc: Exception) -> str:
    """The verification failure in words (e.g. ``certificate verify failed: self-signed certificate``)."""
    cert_error = getattr(exc, "certificate_error", None)
    reason = getattr(cert_error, "verify_message", None) or getattr(cert_error, "reason", None)
    return str(reason or cert_error or type(exc).__name__)


class _TurnPass:
    """Passes a signed call's signing turn on, once: when its body has been handed to the transport
    (``_SignedBody``) or when the call ends without that (refused before sending, no connection, canceled)."""

    __slots__ = ("_turn",)

    def __init__(self, turn: SigningTurn):
        self._turn: SigningTurn | None = turn

    def __call__(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.release()


class _SignedBody(aiohttp.BytesPayload):
    """A signed call's form body, as aiohttp's own bytes payload, that passes the signing turn on once aiohttp has
    written it: ``StreamWriter.write`` hands the request's head and body to the transport in one synchronous
    ``transport.write`` (it awaits only to drain past 64 KiB), so the next holder takes its nonce after these bytes
    are with the transport. Cheaper than a trace hook: a TraceConfig makes aiohttp build and send six trace
    signals a request however few have receivers (about 15 us of CPU a call here).

    ``still_wanted`` is asked again at that last moment, with no await before the bytes go: a call that had to
    open a new connection first (TCP and TLS handshakes, milliseconds) is withdrawn if a HALT was confirmed
    meanwhile. Nothing is written then (aiohttp holds the request's head until the body's first write), the
    connection is dropped, and ``withdrawn`` says why."""

    def __init__(self, body: bytes, passing: _TurnPass, still_wanted: Callable[[], str | None] | None = None):
        super().__init__(body, content_type=FORM)
        self._passing = passing
        self._still_wanted = still_wanted
        self.withdrawn: str | None = None

    def _check(self) -> None:
        if self._still_wanted is not None:
            self.withdrawn = self._still_wanted()
            if self.withdrawn is not None:
                raise CallWithdrawn("AddOrder", self.withdrawn)  # aiohttp wraps it: see _request

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:  # aiohttp >= 3.12
        self._check()
        await super().write_with_length(writer, content_length)
        self._passing()

    async def write(self, writer: Any) -> None:  # aiohttp < 3.12
        self._check()
        await super().write(writer)
        self._passing()


def hear_refusal(breaker: CircuitBreaker, exc: KrakenVenueError) -> None:
    """What a venue's refusal tells the breaker, whatever carried it (REST or WS): a venue-down error
    (``Hint.VENUE_DOWN``) is a failure; any other refusal is a sensible answer, so the venue is up."""
    if exc.rule.hint is Hint.VENUE_DOWN:
        breaker.record_failure(exc.description)
    else:
        breaker.record_success()


class SigningTurn:
    """The lock that serialises signing and sending (nonce order is arrival order), urgent callers first: a
    protective leg's AddOrder takes the next turn before every entry or read already waiting, so a burst of entries
    queued for the wire never holds a stop-loss back. First come, first served within each kind."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (deque(), deque())

    def locked(self) -> bool:
        return self._held

    def waiting(self, *, urgent: bool = False) -> int:
        """How many callers of that kind wait for their turn."""
        return sum(not t.done() for t in self._waiting[0 if urgent else 1])

    async def acquire(self, *, urgent: bool = False) -> None:
        if not self._held and not any(self._waiting):
            self._held = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiting[0 if urgent else 1]
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # the turn was given just as the caller was canceled: pass it on
            elif turn in queue:
                queue.remove(turn)
            raise

    def release(self) -> None:
        for queue in self._waiting:
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # handed over: still held
                    return
        self._held = False


class KrakenRestClient:
    """Kraken Spot REST. Signed calls of one key are serialised (nonce order is arrival order); TLS certificates
    are always verified; every request has a timeout and a User-Agent."""

    def __init__(
        self,
        base_url: str,
        credentials: KrakenCredentials | None = None,
        *,
        data_dir: Path | None = None,
        nonce: PersistentNonce | None = None,
        limiter: RestCallLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        timeout_s: float = 10.0,
        user_agent: str = USER_AGENT,
        session: aiohttp.ClientSession | None = None,
    ):
        self.base_url = check_base_url(base_url)
        self.credentials = credentials
        if credentials is not None and nonce is None:
            if data_dir is None:
                raise ValueError("a data_dir (for the persistent nonce) or a nonce source is required")
            nonce = PersistentNonce(nonce_path(data_dir, credentials.key))
        self.nonce = nonce
        self.limiter = limiter
        self.breaker = breaker
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.user_agent = user_agent
        self._session = session
        self._owns_session = session is None
        self._signed = SigningTurn()
        self._signer: Signer | None = None  # keyed with the secret at the first signed call
        self._posts: dict[str, tuple[URL, bytes, dict[str, str]]] = {}  # method -> URL, signed path, fixed headers

    def __repr__(self) -> str:
        return f"KrakenRestClient(base_url={self.base_url!r}, credentials={self.credentials!r})"

    async def __aenter__(self) -> KrakenRestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # An explicit default context: certificate and host name verification on, whatever the environment.
            connector = aiohttp.TCPConnector(ssl=ssl.create_default_context())
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.user_agent},
                cookie_jar=aiohttp.DummyCookieJar(),  # Kraken's REST API is stateless: no cookie kept or sent
            )
        return self._session

    async def public(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """``GET /0/public/<method>``; returns ``result``."""

        async def send() -> Any:
            if self.limiter is not None:
                await self.limiter.acquire(method)
            return await self._request("GET", f"{self.base_url}/0/public/{method}", method, False, params=params or {})

        return await self._guarded(method, CallKind.READ, send)

    async def private(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        kind: CallKind = CallKind.READ,
        still_wanted: Callable[[], str | None] | None = None,
        urgent: bool = False,
    ) -> Any:
        """``POST /0/private/<method>`` signed; returns ``result``. ``kind`` NEW_ENTRY marks a write whose
        failures after sending are AMBIGUOUS; only READs get the fresh-nonce retry. ``still_wanted`` is asked once
        the call holds the signing lock, just before its nonce is taken: a reason raises CallWithdrawn (not sent).
        ``urgent`` (a protective leg's AddOrder) takes the signing lock before every call not urgent waiting."""
        if self.credentials is None or self.nonce is None:
            raise CredentialsError(f"Kraken {method} needs API credentials")
        for attempt in (1, 2):
            try:
                return await self._guarded(
                    method, kind, lambda: self._signed_request(method, params or {}, kind, still_wanted, urgent)
                )
            except KrakenVenueError as exc:
                if exc.rule.hint is Hint.FRESH_NONCE:
                    self.nonce.invalidate()  # another signer on the key went ahead: continue above its ceiling
                if exc.rule.hint is Hint.FRESH_NONCE and kind is CallKind.READ and attempt == 1:
                    log.warning("Kraken %s: invalid nonce, retrying once with a fresh one", method)
                    continue
                raise
        raise AssertionError("unreachable")

    async def validate_credentials(self) -> None:
        """A cheap authenticated call (Balance) at start: a clear error if Kraken refuses the key."""
        try:
            await self.private("Balance")
        except KrakenVenueError as exc:
            # A nonce refusal says nothing about the key (another signer on it went ahead): not a credentials error.
            if exc.error_class is ErrorClass.PERMANENT and exc.rule.hint is not Hint.FRESH_NONCE:
                raise CredentialsError(
                    f"Kraken refused the API credentials ({exc.description}); check "
                    "EXECLEDGER_KRAKEN_KEY and the secret, and the key's permissions"
                ) from None
            raise

    async def _guarded(self, method: str, kind: CallKind, send) -> Any:
        breaker = self.breaker
        if breaker is not None and not breaker.allows(kind):
            raise BreakerOpen(method, str(breaker.state))
        try:
            result = await send()
        except KrakenTransportError as exc:
            if breaker is not None and trips_breaker(exc.kind, exc.status):
                breaker.record_failure(exc.description)
            raise
        except KrakenVenueError as exc:
            if breaker is not None:
                hear_refusal(breaker, exc)
            if (
                self.limiter is not None
                and exc.rule.read is ErrorClass.RATE_LIMITED
                and not exc.rule.prefix.startswith("EOrder:")
            ):
                self.limiter.on_rate_limited()
            raise
        if breaker is not None:
            breaker.record_success()
        return result

    def _post(self, method: str) -> tuple[URL, bytes, dict[str, str]]:
        """A private method's URL, the path its signature covers and its fixed headers, built once a method."""
        post = self._posts.get(method)
        if post is None:
            assert self.credentials is not None
            path = f"/0/private/{method}"
            headers = {"API-Key": self.credentials.key, "Content-Type": FORM}
            post = self._posts[method] = (URL(self.base_url + path), path.encode(), headers)
        return post

    async def _signed_request(
        self,
        method: str,
        params: dict[str, Any],
        kind: CallKind,
        still_wanted: Callable[[], str | None] | None,
        urgent: bool = False,
    ) -> Any:
        assert self.credentials is not None and self.nonce is not None
        if self._signer is None:
            self._signer = Signer(self.credentials.secret_bytes())
        url, path, fixed = self._post(method)
        # Kraken counts a call when it arrives: capacity is waited for outside the lock (so a throttled read never
        # holds up a cancel, which costs nothing) and taken under it, just before sending. Taken before queueing
        # for the lock, it would be counted too early and a concurrent burst could pass Kraken's maximum.
        # AddOrder (an entry or an exit): the trading engine counts it, not the REST counter.
        limiter = self.limiter if kind is not CallKind.NEW_ENTRY and kind is not CallKind.EXIT else None
        while True:
            if limiter is not None:
                await limiter.wait_for_room(method)
            await self._signed.acquire(urgent=urgent)
            passing = _TurnPass(self._signed)
            try:
                if limiter is not None and not limiter.take_now(method):
                    continue  # another call took the room meanwhile: wait again, without the lock
                withdrawn = still_wanted() if still_wanted is not None else None
                if withdrawn is not None:  # its turn came too late: nothing was signed, nothing leaves
                    raise CallWithdrawn(method, withdrawn)
                nonce = self.nonce.next()
                body = form_body(nonce, params).encode()
                headers = {**fixed, "API-Sign": self._signer.sign(path, str(nonce).encode(), body)}
                # Nonces must reach Kraken in the order they were issued, so signing and *sending* are serialised;
                # waiting for the reply is not: the turn passes on once the body is with the transport
                # (``_SignedBody``), so a reply the venue holds for seconds delays no other call.
                write = kind is CallKind.NEW_ENTRY or kind is CallKind.EXIT
                signed = _SignedBody(body, passing, still_wanted)
                return await self._request("POST", url, method, write, data=signed, headers=headers)
            finally:
                passing()

    async def _request(self, verb: str, url: URL | str, method: str, write: bool, **kwargs: Any) -> Any:
        started = time.monotonic()

        def fail(kind: Transport, description: str, status: int | None = None) -> KrakenTransportError:
            log.warning("Kraken %s failed after %.3fs: %s", method, time.monotonic() - started, description)
            return KrakenTransportError(method, kind, description, write=write, status=status)

        try:
            async with self._http().request(verb, url, timeout=self.timeout, **kwargs) as resp:
                status = resp.status
                body = await resp.read()
                content_type = resp.content_type if status != 200 else ""
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            # Before ClientConnectorError, its base: a certificate that does not verify is not an outage.
            raise fail(Transport.TLS_FAILED, f"TLS handshake with {self.base_url} failed: {_tls_reason(exc)}") from None
        except aiohttp.ClientConnectorError as exc:
            raise fail(Transport.CONNECT_FAILED, f"cannot connect ({type(exc).__name__})") from None
        except TimeoutError:
            raise fail(Transport.TIMEOUT, f"no answer within {self.timeout.total:g}s") from None
        except aiohttp.ClientError as exc:
            body_sent = kwargs.get("data")
            if isinstance(body_sent, _SignedBody) and body_sent.withdrawn is not None:  # nothing was written
                raise CallWithdrawn(method, body_sent.withdrawn) from None
            raise fail(Transport.CONNECTION_LOST, f"connection lost ({type(exc).__name__})") from None
        if status != 200:
            raise fail(Transport.HTTP_STATUS, f"HTTP {status} ({content_type}, {len(body)} bytes)", status)
        try:
            payload = decode_answer(body)
        except ValueError:
            raise fail(Transport.BAD_BODY, f"body is not JSON ({resp.content_type}, {len(body)} bytes)") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("error"), list):
            raise fail(Transport.BAD_BODY, "body is not Kraken's {error, result} envelope")
        errors = [str(e) for e in payload["error"] if not is_warning(str(e))] if payload["error"] else []
        if log.isEnabledFor(logging.DEBUG):
            elapsed = time.monotonic() - started
            log.debug("Kraken %s answered in %.3fs%s", method, elapsed, f" with {errors}" if errors else "")
        if errors:
            raise KrakenVenueError(method, errors, write=write)
        return payload.get("result")
