"""Scripted faults: "the next N calls to <method> misbehave like this". Consumed one per matching call.

A fault names a REST method (``AddOrder`` or ``/0/private/AddOrder``, public ones too) or a WS v2 trading method
(``add_order``, ``amend_order``, ...). Held and delayed replies sleep in that request's own task: other calls
proceed meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from . import errors as E


class FaultKind(StrEnum):
    DELAY_REPLY = "delay_reply"  # execute, then hold the reply for `seconds` (the client times out)
    HOLD_REQUEST = "hold_request"  # hold the request `seconds` before executing it (a slow engine), then reply
    HTTP_502_AFTER_EXECUTE = "http_502_after_execute"  # execute, then answer a Cloudflare-style 502
    HTTP_502_BEFORE_EXECUTE = "http_502_before_execute"  # answer 502 and do nothing
    SERVICE_UNAVAILABLE = "service_unavailable"  # EService:Unavailable, nothing done
    SERVICE_BUSY = "service_busy"  # EService:Busy, nothing done
    API_RATE_LIMIT = "api_rate_limit"  # EAPI:Rate limit exceeded, nothing done
    ORDER_RATE_LIMIT = "order_rate_limit"  # EOrder:Rate limit exceeded, nothing done
    INVALID_NONCE = "invalid_nonce"  # EAPI:Invalid nonce, nothing done (the nonce is not consumed)
    INSUFFICIENT_FUNDS = "insufficient_funds"  # EOrder:Insufficient funds, nothing done
    DELAYED_ACCEPTANCE = "delayed_acceptance"  # AddOrder: 502 now, order enters the book `seconds` later


EXECUTE_FIRST = frozenset({FaultKind.DELAY_REPLY, FaultKind.HTTP_502_AFTER_EXECUTE})
REFUSALS = {
    FaultKind.SERVICE_UNAVAILABLE: E.SERVICE_UNAVAILABLE,
    FaultKind.SERVICE_BUSY: E.SERVICE_BUSY,
    FaultKind.API_RATE_LIMIT: E.API_RATE_LIMIT,
    FaultKind.ORDER_RATE_LIMIT: E.ORDER_RATE_LIMIT,
    FaultKind.INVALID_NONCE: E.INVALID_NONCE,
    FaultKind.INSUFFICIENT_FUNDS: E.INSUFFICIENT_FUNDS,
}
WS_KINDS = frozenset({FaultKind.DELAY_REPLY, FaultKind.HOLD_REQUEST, *REFUSALS})
WS_METHODS = frozenset(
    {
        "add_order",
        "amend_order",
        "edit_order",
        "cancel_order",
        "cancel_all",
        "cancel_all_orders_after",
        "batch_add",
        "batch_cancel",
    }
)


def valid_kinds() -> str:
    return ", ".join(k.value for k in FaultKind)


def fault_kind(kind: FaultKind | str) -> FaultKind:
    """The fault kind named ``kind``, or a ``ValueError`` that lists the valid ones."""
    try:
        return FaultKind(kind)
    except ValueError:
        raise ValueError(f"unknown fault kind {kind!r}: valid kinds are {valid_kinds()}") from None


def method_name(path: str) -> str:
    """``/0/private/AddOrder`` and ``AddOrder`` both name the method ``AddOrder``."""
    return path.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Fault:
    kind: FaultKind
    method: str
    remaining: int
    seconds: float = 0.0

    def as_json(self) -> dict:
        return {"kind": str(self.kind), "path": self.method, "remaining": self.remaining, "seconds": self.seconds}


class FaultPlan:
    """Faults waiting for their calls, first injected first served. ``methods``: the REST methods the venue answers
    (with ``WS_METHODS``, the only names a fault may target; empty: any name)."""

    def __init__(self, methods: frozenset[str] = frozenset()) -> None:
        self._faults: list[Fault] = []
        self._methods = methods | WS_METHODS if methods else frozenset()

    def inject(self, path: str, kind: FaultKind | str, count: int = 1, seconds: float = 0.0) -> Fault:
        """Queue a fault for the next ``count`` calls to ``path``. ``ValueError`` says what is wrong, listing the
        valid values."""
        fault = Fault(fault_kind(kind), method_name(str(path)), count, seconds)
        if not fault.method:
            raise ValueError("path names no method (e.g. AddOrder, /0/private/AddOrder or add_order)")
        if self._methods and fault.method not in self._methods:
            # A misspelt method would wait forever for a call that never comes: the fault would silently not happen.
            names = ", ".join(sorted(self._methods))
            raise ValueError(f"unknown method {fault.method!r} in path: valid methods are {names}")
        if fault.kind is FaultKind.DELAYED_ACCEPTANCE and fault.method != "AddOrder":
            raise ValueError("delayed_acceptance applies to AddOrder only")
        if fault.method in WS_METHODS and fault.kind not in WS_KINDS:
            kinds = ", ".join(sorted(k.value for k in WS_KINDS))
            raise ValueError(f"{fault.kind} does not apply to the WS method {fault.method}: valid kinds are {kinds}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        self._faults.append(fault)
        return fault

    def take(self, path: str) -> Fault | None:
        """The fault for this call, if any, counting it as used."""
        method = method_name(path)
        for fault in self._faults:
            if fault.method == method:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    def pending(self) -> list[Fault]:
        return list(self._faults)
