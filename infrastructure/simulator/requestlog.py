"""Every REST call the simulator received, for tests and demos ("how many AddOrder calls carried this cl_ord_id?")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .faults import method_name


@dataclass
class RequestRecord:
    time: float
    path: str
    params: dict[str, Any]  # the request's parameters (never headers: no key, no signature)
    key: str | None = None
    status: int = 200
    error: str | None = None
    fault: str | None = None
    result: Any = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return method_name(self.path)

    def as_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "path": self.path,
            "method": self.method,
            "params": self.params,
            "status": self.status,
            "error": self.error,
            "fault": self.fault,
            "result": self.result,
        }


class RequestLog:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def record(self, time: float, path: str, params: dict[str, Any]) -> RequestRecord:
        """Log one request and return its record, filled in as the call proceeds."""
        shown = {k: v for k, v in params.items() if k != "otp"}
        entry = RequestRecord(time, path, shown)
        self.records.append(entry)
        return entry

    def calls(self, method: str | None = None, cl_ord_id: str | None = None) -> list[RequestRecord]:
        """Records filtered by method name (``AddOrder``) and/or the ``cl_ord_id`` parameter."""
        return [
            r
            for r in self.records
            if (method is None or r.method == method_name(method))
            and (cl_ord_id is None or str(r.params.get("cl_ord_id")) == cl_ord_id)
        ]
