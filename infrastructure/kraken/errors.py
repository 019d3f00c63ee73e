"""The one error policy table: every Kraken error string and transport failure -> an ``ErrorClass``.

REFERENCE.md section 4. Two columns per row: a *read* (queries, cancels: idempotent, may be retried) and a *write*
(AddOrder: never resent). For a write, anything that may have reached the matching engine is AMBIGUOUS: it is
resolved by evidence (cl_ord_id lookup, the deadline), never by sending it again.

A third, optional column, *entry*, is an entry's AddOrder where it differs from an exit's. A refusal that executed
nothing (NOT_EXECUTED) is sent again, after a wait or corrected; that is right for a protective leg, which must keep
protecting the position it is for (a leg refused for funds is resized to what the account holds, REFERENCE.md
3.3: an untriggered stop holds the base). For an entry the same refusal can be definite: no wait and no correction
makes the venue take it (an entry keeps its size; the account's funds or its open-order count do not change
because we ask again), so it is recorded rejected at once, with the venue's reason, instead of being sent again
until the signal's maximum age runs out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from execledger.application.ports import Correction, ErrorClass, VenueError

R, L, P, A, N, X = (
    ErrorClass.RETRYABLE,
    ErrorClass.RATE_LIMITED,
    ErrorClass.PERMANENT,
    ErrorClass.AMBIGUOUS,
    ErrorClass.NOT_FOUND,
    ErrorClass.NOT_EXECUTED,
)


class Hint(StrEnum):
    """Extra handling a row asks for, beyond its class."""

    NONE = "none"
    FRESH_NONCE = "fresh_nonce"  # reads get exactly one retry with a new nonce
    RETRY_AT = "retry_at"  # the message carries the unix time after which to retry
    CANCEL_PENDING = "cancel_pending"  # the cancel is already in flight: not a failure
    REFRESH_TOKEN = "refresh_token"  # WS token is stale: get a new one and resubscribe
    VENUE_DOWN = "venue_down"  # counts towards opening the circuit breaker


@dataclass(frozen=True)
class ErrorRule:
    prefix: str  # matched against the start of the error string (Kraken appends details after a colon)
    read: ErrorClass
    write: ErrorClass
    hint: Hint = Hint.NONE
    correction: Correction = Correction.NONE  # a NOT_EXECUTED write: what to correct before sending it again
    entry: ErrorClass | None = None  # an entry's AddOrder, where it differs from ``write`` (an exit's)

    def write_class(self, *, entry: bool) -> ErrorClass:
        """The class of an AddOrder refused with this error: an entry's (``entry`` column, else ``write``) or an
        exit's (``write``)."""
        return self.entry if entry and self.entry is not None else self.write


# Order matters only where one prefix extends another; lookup takes the longest matching prefix.
RR, RS, VC = Correction.REROUND, Correction.RESIZE, Correction.VENUE_CLOCK

ERROR_TABLE: tuple[ErrorRule, ...] = (
    # Throttling: the request was refused before doing anything, so a write is certainly not executed: it is sent
    # again once the counter allows.
    ErrorRule("EAPI:Rate limit exceeded", L, X),
    ErrorRule("EAuth:Rate limit exceeded", L, X),
    ErrorRule("EGeneral:Too many requests", L, X),
    ErrorRule("EService:Throttled", L, X, Hint.RETRY_AT),
    ErrorRule("EOrder:Rate limit exceeded", L, X),
    ErrorRule("EOrder:Domain rate limit exceeded", L, X),
    # The engine is unwell: a write may or may not have been processed.
    ErrorRule("EService:Unavailable", R, A, Hint.VENUE_DOWN),
    ErrorRule("EService:Busy", R, A, Hint.VENUE_DOWN),
    ErrorRule("EGeneral:Internal error", R, A),
    ErrorRule("EDatabase:Internal error", R, A),
    # Nonce: checked before the engine sees the request, so a write is certainly not executed (another client on
    # the key signed with a nonce ahead of ours, or our own later call arrived first): sent again with a fresh nonce.
    ErrorRule("EAPI:Invalid nonce", P, X, Hint.FRESH_NONCE, Correction.FRESH_NONCE),
    # Market gates and deadline: nothing was executed; the same order may pass later.
    ErrorRule("EService:Market in cancel_only mode", P, X),
    ErrorRule("EService:Market in post_only mode", P, X),
    ErrorRule("EService:Market in limit_only mode", P, X),
    # A deadline elapsed (or refused as out of Kraken's now + 2 s .. now + 60 s, REFERENCE.md 3.2) is sent again on
    # the venue's own clock: read it first (``Correction.VENUE_CLOCK``).
    ErrorRule("EService:Deadline elapsed", P, X, correction=VC),
    ErrorRule("EGeneral:Invalid arguments:deadline", P, X, correction=VC),
    # Authentication and account state.
    ErrorRule("EAPI:Invalid key", P, P),
    ErrorRule("EAPI:Invalid signature", P, P),
    ErrorRule("EAPI:Permission denied", P, P),
    ErrorRule("EGeneral:Permission denied", P, P),
    ErrorRule("EGeneral:Temporary lockout", P, P),
    ErrorRule("ETrade:User Locked", P, P),
    ErrorRule("EAuth:Account temporary disabled", P, P),
    ErrorRule("EAPI:Invalid token", R, R, Hint.REFRESH_TOKEN),
    ErrorRule("ESession:Invalid session", R, R, Hint.REFRESH_TOKEN),
    # The request is wrong.
    ErrorRule("EGeneral:Invalid arguments", P, P),
    ErrorRule("EGeneral:Unknown method", P, P),
    ErrorRule("EQuery:Unknown asset pair", P, P),
    ErrorRule("EQuery:Unknown asset", P, P),
    ErrorRule("EQuery:Invalid asset pair", P, P),
    # Refused for what it asks, but correctable: the pair's rules changed (re-round), the funds are short (resize),
    # too many orders rest (wait). Nothing was executed. An entry is re-rounded like a leg (the venue's rules
    # changed), but it is never resized and does not wait for its funds or for open orders to end: definite (P).
    ErrorRule("EGeneral:Invalid arguments:volume", P, X, correction=RR),
    ErrorRule("EOrder:Invalid price", P, X, correction=RR),
    ErrorRule("EOrder:Tick size check failed", P, X, correction=RR),
    ErrorRule("EOrder:Insufficient funds", P, X, correction=RS, entry=P),
    ErrorRule("EOrder:Orders limit exceeded", P, X, entry=P),
    ErrorRule("EOrder:Scheduled orders limit exceeded", P, X, entry=P),
    ErrorRule("EOrder:Order minimum not met", P, P),
    ErrorRule("EOrder:Cost minimum not met", P, P),
    ErrorRule("EOrder:Positions limit exceeded", P, P),
    ErrorRule("EOrder:Margin allowance exceeded", P, P),
    ErrorRule("EOrder:Margin level too low", P, P),
    ErrorRule("EOrder:Insufficient margin", P, P),
    ErrorRule("EOrder:Reduce only", P, P),
    # An order with this cl_ord_id is already open: an earlier AddOrder of ours was placed after all (an order keeps
    # its cl_ord_id when it is sent again after a certain refusal, and Kraken checks uniqueness across open orders,
    # REFERENCE.md 2 [D-CLID]). Not a refusal of this order: resolved by cl_ord_id like any unknown outcome. Kraken's
    # exact wording is an open question (REFERENCE.md 9); this is the simulator's stand-in.
    ErrorRule("EOrder:Duplicate cl_ord_id", P, A),
    # The order is not open (any more): learn its final state by querying.
    ErrorRule("EOrder:Unknown order", N, N),
    ErrorRule("EOrder:Invalid order", N, N),
    ErrorRule("EOrder:Cancel pending", P, P, Hint.CANCEL_PENDING),
)

# A string no row knows: a venue answer is a refusal for reads, but for a write "refused" is a guess, so it is
# resolved by lookup like any other ambiguous outcome. The EService category means the service is unwell.
UNKNOWN_ERROR = ErrorRule("", P, A)
UNKNOWN_SERVICE_ERROR = ErrorRule("EService:", R, A, Hint.VENUE_DOWN)
UNKNOWN_ORDER_ERROR = ErrorRule("EOrder:", P, P)  # order validation rejects before the engine accepts


def _normalise(message: str) -> str:
    # Kraken's docs write "EService: Throttled: <ts>" with a space after the category colon; wire strings do not.
    return re.sub(r"^([EW][A-Za-z]+):\s+", r"\1:", message.strip())


def rule_for(message: str) -> ErrorRule:
    """The table row for one Kraken error string (longest prefix wins; unknown strings get a safe default)."""
    text = _normalise(message)
    best: ErrorRule | None = None
    for rule in ERROR_TABLE:
        if text.startswith(rule.prefix) and (best is None or len(rule.prefix) > len(best.prefix)):
            best = rule
    if best is not None:
        return best
    if text.startswith("EService:"):
        return UNKNOWN_SERVICE_ERROR
    if text.startswith("EOrder:"):
        return UNKNOWN_ORDER_ERROR
    return UNKNOWN_ERROR


def classify_error(message: str, *, write: bool, entry: bool = False) -> ErrorClass:
    """How to treat one Kraken error string for a read/cancel (``write=False``) or an AddOrder (``write=True``): an
    exit's, or with ``entry`` an entry's."""
    rule = rule_for(message)
    return rule.write_class(entry=entry) if write else rule.read


def retry_at(message: str) -> float | None:
    """The unix time in ``EService:Throttled: <ts>``, if the message carries one."""
    match = re.search(r"Throttled:\s*(\d+(?:\.\d+)?)", message)
    return float(match.group(1)) if match else None


def is_warning(message: str) -> bool:
    """Kraken's ``W...`` strings are warnings that ride along with a result, not errors."""
    return message.startswith("W")


class Transport(StrEnum):
    """What went wrong below Kraken's JSON envelope."""

    CONNECT_FAILED = "connect_failed"  # no connection was made: the request certainly never left
    TIMEOUT = "timeout"  # sent (perhaps), no answer in time
    CONNECTION_LOST = "connection_lost"  # reset / disconnected after the request may have been written
    HTTP_STATUS = "http_status"  # a status other than 200 (Cloudflare 5xx pages, 429, ...)
    BAD_BODY = "bad_body"  # 200 but not Kraken's JSON envelope (an HTML page, truncated JSON)
    TLS_FAILED = "tls_failed"  # the TLS handshake failed (certificate not trusted, wrong host, not TLS at all)


# HTTP statuses that mean "the request did not get a proper answer; it may have been processed".
TRANSIENT_HTTP = frozenset({408, 425, 429})


def classify_transport(kind: Transport, *, write: bool, status: int | None = None) -> ErrorClass:
    """The class of a transport failure. For a write, everything except "never connected" and a plain
    client-side refusal (4xx other than 408/425/429) is AMBIGUOUS: Kraken says a 502 order may still execute.

    A failed TLS handshake is PERMANENT for both: no request was sent, and retrying cannot help. It is a
    configuration problem (a wrong or intercepted ``EXECLEDGER_KRAKEN_URL``, a missing CA bundle), never an outage
    to wait out, and it must not teach us to trust another certificate."""
    if kind is Transport.TLS_FAILED:
        return P
    if kind is Transport.CONNECT_FAILED:
        return R
    if kind is Transport.HTTP_STATUS and status is not None and 400 <= status < 500 and status not in TRANSIENT_HTTP:
        return P
    if write:
        return A
    if kind is Transport.HTTP_STATUS and status == 429:
        return L
    return R


def trips_breaker(kind: Transport, status: int | None = None) -> bool:
    """Transport failures and 5xx count towards opening the circuit breaker; a client-side 4xx and a TLS failure
    (configuration, not the venue being down) do not."""
    if kind is Transport.TLS_FAILED:
        return False
    if kind is Transport.HTTP_STATUS:
        return status is not None and status >= 500
    return True


class KrakenCallFailed(VenueError):
    """A Kraken call did not produce a usable result. The message names the method and the cause only: never a
    key, secret, signature, nonce or request body."""

    def __init__(self, method: str, description: str, error_class: ErrorClass):
        super().__init__(f"Kraken {method}: {description} [{error_class}]", error_class)
        self.method = method
        self.description = description


class KrakenVenueError(KrakenCallFailed):
    """Kraken answered with a non-empty ``error`` array."""

    def __init__(self, method: str, errors: list[str], *, write: bool):
        self.errors = tuple(errors)
        self.rule = rule_for(errors[0])
        super().__init__(method, "; ".join(errors), self.rule.write if write else self.rule.read)

    @property
    def retry_at(self) -> float | None:
        return retry_at(self.errors[0]) if self.rule.hint is Hint.RETRY_AT else None


class KrakenTransportError(KrakenCallFailed):
    """No usable answer: timeout, connection failure, HTTP status other than 200, or a body that is not JSON."""

    def __init__(self, method: str, kind: Transport, description: str, *, write: bool, status: int | None = None):
        self.kind = kind
        self.status = status
        super().__init__(method, description, classify_transport(kind, write=write, status=status))


class BreakerOpen(KrakenCallFailed):
    """The circuit breaker refused the call: it was not sent."""

    def __init__(self, method: str, detail: str):
        super().__init__(method, f"not sent, circuit breaker {detail}", ErrorClass.RETRYABLE)


class CallWithdrawn(KrakenCallFailed):
    """The caller no longer wanted the call when its turn to be signed and sent came (a HALT while an AddOrder
    waited for the wire): it was not sent."""

    def __init__(self, method: str, why: str):
        super().__init__(method, f"not sent, withdrawn before it left: {why}", ErrorClass.RETRYABLE)


class ThrottleWaitTooLong(KrakenCallFailed):
    """Capacity would only be free after longer than the configured wait: the call was not sent."""

    def __init__(self, method: str, wait_s: float):
        super().__init__(method, f"not sent, rate limit needs {wait_s:.1f}s of waiting", ErrorClass.RATE_LIMITED)
        self.wait_s = wait_s
