"""Errors the domain raises. Each one says what was wrong in words an operator can act on."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base class of every error raised by the domain model."""


@dataclass(frozen=True)
class FieldError:
    """One rule one field broke: ``field`` names the input field, ``rule`` the rule's stable identifier."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.rule}]"


class SignalRejected(DomainError):
    """An approved signal that cannot become an order; carries every field error found."""

    def __init__(self, errors: list[FieldError]):
        self.errors = list(errors)
        super().__init__("invalid signal: " + "; ".join(str(e) for e in self.errors))


class InvalidTransition(DomainError):
    """A command asked for an edge that is not in the order state machine's transition table."""

    def __init__(self, order_id: object, current: str, target: str, command: str):
        self.order_id, self.current, self.target, self.command = order_id, current, target, command
        super().__init__(
            f"order {order_id}: {command} would move {current} -> {target}, which is not an allowed transition"
        )


class Overfill(DomainError):
    """A fill would take the cumulative filled quantity above the order quantity."""

    def __init__(self, order_id: object, trade_id: str, filled: object, adding: object, quantity: object):
        self.order_id, self.trade_id = order_id, trade_id
        super().__init__(
            f"order {order_id}: trade {trade_id} adds {adding} to {filled} already filled, "
            f"which exceeds the order quantity {quantity}"
        )


class ConflictingFill(DomainError):
    """A trade id already recorded arrives again with different quantity or price (the venue contradicts itself)."""
