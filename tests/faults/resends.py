"""Invariant 3 of the fault suite: every AddOrder on the wire is explained by a recorded decision, and no two
AddOrders carrying one cl_ord_id could both execute.

An order keeps one ``cl_ord_id`` for life. Kraken enforces its uniqueness across the account's *open* orders only
(REFERENCE.md 2, [D-CLID]), so an AddOrder the venue refused before executing anything (a nonce, a rate limit,
funds, precision, a market gate: the error table's ``NOT_EXECUTED`` row for a write) left no order behind, and the
same order may be sent again under the same id; should an earlier attempt have been placed after all, the venue's
own uniqueness check refuses the repeat while it rests. What must never happen is a *blind* resend: a second
AddOrder after one whose outcome was unknown (a 502, a timeout, ``EService:Unavailable``, a crash during the call),
which only a ``cl_ord_id`` lookup may settle (REFERENCE.md 4.3).

So, for each cl_ord_id, with its AddOrder calls in the order the venue received them (the simulator's request log):

- every call but the last was answered (HTTP 200) with an error the one error table classes ``NOT_EXECUTED`` for a
  write: the venue certainly executed nothing;
- the ledger's order holds at least as many ``Submitted`` decisions as there were calls (each call was decided and
  recorded before it went out), and at least one ``NotSent`` outcome recorded for a certain refusal
  (``error_class: not_executed``) per repeat (each repeat follows a refusal the ledger saw and recorded).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from execledger.application.ports import ErrorClass
from execledger.infrastructure.kraken.errors import classify_error

INVARIANT = 3


# Orders go over WS v2 add_order/cancel_order while the executions socket is healthy and over REST otherwise
# (KrakenExchange order_entry "ws"): a write fault is injected on both routes where the simulator has it on both, so
# it hits the next write whichever route that takes (the other waits for a later write on its route).
WS_TWINS = {"AddOrder": "add_order", "CancelOrder": "cancel_order", "AmendOrder": "amend_order"}
WS_TWIN_KINDS = frozenset(
    {
        "delay_reply",
        "hold_request",
        "service_unavailable",
        "service_busy",
        "api_rate_limit",
        "order_rate_limit",
        "insufficient_funds",
    }
)  # not invalid_nonce (a REST nonce), nor the 502s and delayed_acceptance (HTTP answers)


def fault_paths(method: str, kind: str) -> list[str]:
    """The methods a fault of ``kind`` meant for the REST ``method`` is injected on: it and its WS v2 twin."""
    twin = WS_TWINS.get(method)
    return [method, twin] if twin is not None and kind in WS_TWIN_KINDS else [method]


def certainly_refused(call: Mapping[str, Any]) -> bool:
    """The venue answered this AddOrder with a refusal that executed nothing (a request-log record as JSON:
    ``status``, ``error``)."""
    error = call.get("error")
    return call.get("status") == 200 and bool(error) and classify_error(error, write=True) is ErrorClass.NOT_EXECUTED


def recorded_attempts(history: Iterable[Any]) -> tuple[int, int]:
    """(Submitted decisions, NotSent outcomes for a certain refusal) in an order's history (``HistoryEntry`` items:
    ``name``, ``data``)."""
    submitted = refused = 0
    for entry in history:
        if entry.name == "Submitted":
            submitted += 1
        elif entry.name == "NotSent" and (entry.data.get("reason") or {}).get("error_class") == str(
            ErrorClass.NOT_EXECUTED
        ):
            refused += 1
    return submitted, refused


def add_order_violations(
    calls: Iterable[Mapping[str, Any]], attempts: Callable[[str], tuple[int, int] | None]
) -> list[str]:
    """Invariant 3's findings, one line each. ``calls``: the venue's AddOrder and WS add_order request-log records
    (``params``, ``status``, ``error``) in arrival order; ``attempts(cl_ord_id)``: ``recorded_attempts`` of the
    ledger's order with that cl_ord_id, or None when the ledger has none."""
    by_cl: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for call in calls:
        by_cl[str(call["params"].get("cl_ord_id"))].append(call)
    found: list[str] = []
    for cl_ord_id, sent in by_cl.items():
        recorded = attempts(cl_ord_id)
        if recorded is None:
            found.append(f"{len(sent)} AddOrder call(s) carried cl_ord_id {cl_ord_id}, which no ledger order has")
            continue
        if len(sent) == 1:
            continue
        submitted, refused = recorded
        blind = [i + 1 for i, call in enumerate(sent[:-1]) if not certainly_refused(call)]
        if blind:
            answers = ", ".join(f"#{i}: {sent[i - 1].get('status')} {sent[i - 1].get('error') or 'ok'}" for i in blind)
            found.append(
                f"{len(sent)} AddOrder calls carried cl_ord_id {cl_ord_id}, sent again after an answer that was not a "
                f"certain refusal ({answers}): a blind resend"
            )
        if submitted < len(sent):
            found.append(
                f"{len(sent)} AddOrder calls carried cl_ord_id {cl_ord_id} but the ledger decided only {submitted}"
            )
        if refused < len(sent) - 1:
            found.append(
                f"{len(sent)} AddOrder calls carried cl_ord_id {cl_ord_id} but the ledger recorded only {refused} "
                f"certain refusal(s) before sending it again"
            )
    return found
