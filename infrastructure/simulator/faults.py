"""Scripted faults: "the next N calls to <method> misbehave like this". Consumed one per matching call."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    DELAY_REPLY = "delay_reply"  # execute, then hold the reply for `seconds` (the client times out)
    HTTP_502_AFTER_EXECUTE = "http_502_after_execute"  # execute, then answer a Cloudflare-style 502
    HTTP_502_BEFORE_EXECUTE = "http_502_before_execute"  # answer 502 and do nothing
    SERVICE_UNAVAILABLE = "service_unavailable"  # EService:Unavailable, nothing done
    SERVICE_BUSY = "service_busy"  # EService:Busy, nothing done
    API_RATE_LIMIT = "api_rate_limit"  # EAPI:Rate limit exceeded, nothing done
    ORDER_RATE_LIMIT = "order_rate_limit"  # EOrder:Rate limit exceeded, nothing done
    DELAYED_ACCEPTANCE = "delayed_acceptance"  # AddOrder: 502 now, order enters the book `seconds` later


EXECUTE_FIRST = frozenset({FaultKind.DELAY_REPLY, FaultKind.HTTP_502_AFTER_EXECUTE})


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
    """Faults waiting for their calls, first injected first served."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def inject(self, path: str, kind: FaultKind | str, count: int = 1, seconds: float = 0.0) -> Fault:
        """Queue a fault for the next ``count`` calls to ``path``."""
        fault = Fault(FaultKind(kind), method_name(path), count, seconds)
        if fault.kind is FaultKind.DELAYED_ACCEPTANCE and fault.method != "AddOrder":
            raise ValueError("delayed_acceptance applies to AddOrder only")
        if count < 1:
            raise ValueError("count must be at least 1")
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
