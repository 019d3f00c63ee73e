"""How an order's stored events read in an audit: each event is a fact from the venue, a decision, or an outcome."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    DECISION = "decision"  # what we decided and why (recorded before any exchange call)
    OUTCOME = "outcome"  # what the exchange answered to one of our calls
    FACT = "fact"  # what the venue reported on its own (fills, cancels, expiries)


EVENT_KINDS: dict[str, EventKind] = {
    "Placed": EventKind.DECISION,
    "Submitted": EventKind.DECISION,
    "CancelRequested": EventKind.DECISION,
    "TimedOut": EventKind.DECISION,
    "BracketPlaced": EventKind.DECISION,
    "BracketLegAdded": EventKind.DECISION,
    "Deferred": EventKind.DECISION,
    "CloseRequested": EventKind.DECISION,
    "OperatorResolved": EventKind.DECISION,
    "Corrected": EventKind.DECISION,
    "PositionExitAdded": EventKind.DECISION,
    "Acknowledged": EventKind.OUTCOME,
    "Rejected": EventKind.OUTCOME,
    "SubmissionOutcomeUnknown": EventKind.OUTCOME,
    "CancelRejected": EventKind.OUTCOME,
    "NotSent": EventKind.OUTCOME,
    "ConflictRecorded": EventKind.FACT,
    "PartiallyFilled": EventKind.FACT,
    "Filled": EventKind.FACT,
    "Canceled": EventKind.FACT,
    "Expired": EventKind.FACT,
}
