"""Operator commands as values, recorded as events by whichever process receives them.

Any process (the api role, the CLI, a console button, the trading system's client) records a ``Command`` in the
commands log; the one trading process follows that log, carries each command out exactly once and records a
``CommandReceipt`` (applied, unchanged or refused, and why) in the same transaction as the decisions it caused.
A command names who asked (``by``) and why: both are required, and both end up in the reasons of its decisions.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from eventsourcing.domain import Aggregate, event
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints, ValidationError

from execledger.domain.clock import TimestampedEvent
from execledger.domain.errors import FieldError
from execledger.domain.signal import _decimal_text as decimal_text

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]

MAX_BY = 200  # characters of ``by`` (who), after stripping
MAX_WHY = 500  # characters of ``why``, after stripping

# Control characters (Unicode category Cc: C0, DEL, C1) and lone surrogates (Cs). A NUL cannot be stored in a
# PostgreSQL text column (a read model that cannot store a row stops following the log), a lone surrogate cannot be
# encoded as UTF-8 at all (the event store refuses it), and the others rewrite terminals and log lines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class CommandKind(StrEnum):
    SUBMIT_SIGNAL = "submit_signal"  # an approved trade signal: becomes an entry order
    HALT = "halt"  # no new entries (HALTED, or REDUCING: resting entries keep working); optionally cancel entries
    RESUME = "resume"  # accept new entries again
    CANCEL_ORDER = "cancel_order"  # cancel one working order (an entry or an exit; protective legs refuse)
    CLOSE_POSITION = "close_position"  # cancel a signal's entry and legs, then exit what is held at market
    RESOLVE_ORDER = "resolve_order"  # the venue lost an order: mark it canceled or filled by hand


def _decimal(value: Any) -> Any:
    """Text (the API, the CLI, the log) and JSON numbers follow the signal's rule (domain/signal.py): plain decimal
    notation within 12 integer and 18 fraction digits, so "1e999999" is refused where it is issued instead of
    becoming a million-digit price; a ``Decimal`` from a Python caller is bounded by the trading process."""
    return value if isinstance(value, Decimal) else decimal_text(value)


CommandDecimal = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    Field(gt=0, allow_inf_nan=False),
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),  # read back as it was written
]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubmitSignal(_Payload):
    signal: dict[str, Any]  # validated by domain.signal.parse_signal when carried out (and when received)


class Halt(_Payload):
    reducing: bool = False  # REDUCING instead of HALTED
    cancel_entries: bool = False  # also cancel every resting entry order


class Resume(_Payload):
    pass


class CancelOrder(_Payload):
    order: Ref  # an order id, a Kraken txid or a cl_ord_id


class ClosePosition(_Payload):
    signal_id: Ref


class ResolveOrder(_Payload):
    order: Ref  # an order id, a Kraken txid or a cl_ord_id
    resolution: Literal["canceled", "filled"]
    price: CommandDecimal | None = None  # filled: at this price
    quantity: CommandDecimal | None = None  # filled: this much (default: all)


PAYLOADS: dict[CommandKind, type[_Payload]] = {
    CommandKind.SUBMIT_SIGNAL: SubmitSignal,
    CommandKind.HALT: Halt,
    CommandKind.RESUME: Resume,
    CommandKind.CANCEL_ORDER: CancelOrder,
    CommandKind.CLOSE_POSITION: ClosePosition,
    CommandKind.RESOLVE_ORDER: ResolveOrder,
}


class InvalidCommand(ValueError):
    """A command that cannot be recorded; ``errors`` name each field."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("invalid command: " + "; ".join(str(e) for e in errors))


def text_problem(text: str) -> tuple[str, str] | None:
    """The rule and description of the first character of ``text`` a command may not hold, or None: a control
    character, or a lone surrogate (a command line that was not UTF-8 arrives as U+DC80-U+DCFF, one per byte)."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    code, at = ord(found.group()), found.start()
    if 0xDC80 <= code <= 0xDCFF:
        return "invalid_unicode", f"must be UTF-8 text (byte 0x{code - 0xDC00:02X} at position {at} is not)"
    if 0xD800 <= code <= 0xDFFF:
        return "invalid_unicode", f"must be valid Unicode (a lone surrogate U+{code:04X} at position {at})"
    return "control_character", f"must not contain control characters (U+{code:04X} at position {at})"


def text_errors(value: Any, field: str) -> list[FieldError]:
    """Every text in ``value`` (a string, or the keys and values of nested dicts and lists) that holds a control
    character or a lone surrogate, each named by its path (``signal.tags.note``, ``order``)."""
    errors: list[FieldError] = []
    if isinstance(value, str):
        if (problem := text_problem(value)) is not None:
            errors.append(FieldError(field, *problem))
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{field}.{key}" if field else str(key)
            if isinstance(key, str) and (problem := text_problem(key)) is not None:
                rule, message = problem
                errors.append(FieldError(field or "payload", rule, f"a key {message}"))
                name = f"{field}[{key!r}]" if field else repr(key)
            errors += text_errors(item, name)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            errors += text_errors(item, f"{field}.{i}" if field else str(i))
    return errors


def parse_payload(kind: CommandKind | str, payload: dict[str, Any]) -> _Payload:
    """Validate a command's payload; InvalidCommand names every bad field."""
    try:
        model = PAYLOADS[CommandKind(kind)]
    except ValueError:
        raise InvalidCommand([FieldError("kind", "unknown_command", f"{kind!r} is not a command")]) from None
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidCommand(
            [FieldError(".".join(str(p) for p in e["loc"]) or "payload", e["type"], e["msg"]) for e in exc.errors()]
        ) from None


class Command(Aggregate):
    """One command as its issuer recorded it (in the commands log, never in the orders log)."""

    class Event(TimestampedEvent):
        pass

    class Created(Event, Aggregate.Created):
        pass

    class Issued(Created):
        kind: str
        payload: dict[str, Any]
        by: str
        why: str
        origin: str  # which process recorded it, e.g. "api pid 4242 on host-1"

    @classmethod
    def issue(
        cls,
        *,
        kind: CommandKind,
        payload: dict[str, Any],
        by: str,
        why: str,
        origin: str,
        command_id: uuid.UUID | None = None,
    ) -> Command:
        """Validate and record a command (``command_id``: its id, a new uuid4 unless given, e.g.
        ``signal_command_id`` for a signal). ``by`` (who, at most 200 characters) and ``why`` (at most 500) are
        required: they become part of its reasons. No text of the command (``by``, ``why``, any text of the payload,
        nested or a key) may hold a control character. Raises InvalidCommand naming every bad field; nothing is
        shortened or changed silently."""
        errors = []
        texts: dict[str, str] = {}
        for name, value, limit, what in (("by", by, MAX_BY, "who issues"), ("why", why, MAX_WHY, "why it is issued")):
            if not isinstance(value, str):
                errors.append(FieldError(name, "string_type", "must be text"))
                continue
            text = value.strip()
            if not text:
                errors.append(FieldError(name, "required", f"{what} the command"))
            elif len(text) > limit:
                errors.append(FieldError(name, "string_too_long", f"must be at most {limit} characters"))
            errors += text_errors(text, name)
            texts[name] = text
        errors += text_errors(payload, "")
        if errors:
            raise InvalidCommand(errors)
        recorded = parse_payload(kind, payload).model_dump(mode="json", exclude_none=True)
        parse_payload(kind, recorded)  # what the trading process will read back must parse (a Decimal beyond bounds)
        return cls._create(
            cls.Issued,
            id=command_id or uuid.uuid4(),
            kind=CommandKind(kind).value,
            payload=recorded,
            by=texts["by"],
            why=texts["why"],
            origin=origin,
        )

    @event(Issued)
    def __init__(self, *, kind: str, payload: dict[str, Any], by: str, why: str, origin: str) -> None:
        self.kind = CommandKind(kind)
        self.payload = dict(payload)
        self.by = by
        self.why = why
        self.origin = origin

    def parsed(self) -> _Payload:
        return parse_payload(self.kind, self.payload)


class Outcome(StrEnum):
    APPLIED = "applied"  # carried out: its decisions are recorded with this receipt
    UNCHANGED = "unchanged"  # valid, but there was nothing to do (already halted, same signal again)
    REFUSED = "refused"  # not carried out; ``detail["refusal"]`` says which kind of refusal and why


class Refusal(StrEnum):
    """Why a command was not carried out; the HTTP API maps each to a status code."""

    INVALID = "invalid"  # fields are wrong (422)
    CONFLICT = "conflict"  # the signal id was used for another signal (409)
    HALTED = "halted"  # new entries are refused while trading is not running (423)
    NOT_FOUND = "not_found"  # no such order or signal (404)
    NOT_ALLOWED = "not_allowed"  # the order's state forbids it (409)
    STALE = "stale"  # older than its maximum age when the trading process read it (409)
    BUSY = "busy"  # too many entries wait to be sent, or the venue is unavailable (503)


class CommandReceipt(Aggregate):
    """What the trading process did with one command. Its id is the command's id; written exactly once."""

    class Event(TimestampedEvent):
        pass

    class Created(Event, Aggregate.Created):
        pass

    class Recorded(Created):
        kind: str
        outcome: str
        detail: dict[str, Any]
        process: str  # the trading process that carried it out

    @classmethod
    def record(
        cls, *, command_id: uuid.UUID, kind: CommandKind, outcome: Outcome, detail: dict[str, Any], process: str
    ) -> CommandReceipt:
        return cls._create(
            cls.Recorded,
            id=command_id,
            kind=CommandKind(kind).value,
            outcome=Outcome(outcome).value,
            detail=detail,
            process=process,
        )

    @event(Recorded)
    def __init__(self, *, kind: str, outcome: str, detail: dict[str, Any], process: str) -> None:
        self.kind = CommandKind(kind)
        self.outcome = Outcome(outcome)
        self.detail = dict(detail)
        self.process = process

    @property
    def refusal(self) -> Refusal | None:
        value = self.detail.get("refusal")
        return Refusal(value) if value else None


_SIGNAL_COMMANDS = uuid.UUID("6d3c1f8e-2a8b-5f0e-9c4d-7b1e0a2f9c31")  # namespace of a signal's command ids
_SIGNAL_REFUSALS = uuid.UUID("0f6b2c4e-8d1a-5b3f-a7e9-2c5d8f1b4e60")  # namespace of SignalRefusals ids


def signal_command_id(signal_id: str, refused: int) -> uuid.UUID:
    """The id of the ``submit_signal`` command that records signal ``signal_id`` after ``refused`` of its commands
    were refused (``SignalRefusals.version``; 0 when none was): one id per attempt, so a signal's pending command is
    found by one lookup, and two POSTs of one signal at once record one command."""
    return uuid.uuid5(_SIGNAL_COMMANDS, f"{signal_id}/{refused}")


def signal_refusals_id(signal_id: str) -> uuid.UUID:
    """The id of signal ``signal_id``'s ``SignalRefusals`` (in the orders store)."""
    return uuid.uuid5(_SIGNAL_REFUSALS, signal_id)


class SignalRefusals(Aggregate):
    """Every recorded ``submit_signal`` command of one signal that the trading process refused, newest last; written
    by the trading process in the same transaction as the command's receipt. Its id is ``signal_refusals_id``; its
    ``version`` is how many of the signal's commands were refused (which numbers the next one,
    ``signal_command_id``). Each event holds the whole refusal: the newest event alone answers "what became of
    signal X" for a signal that has no entry order."""

    class Event(TimestampedEvent):
        pass

    class Created(Event, Aggregate.Created):
        pass

    class FirstRefused(Created):
        signal_id: str
        command_id: str
        refusal: str  # a ``Refusal`` value
        message: str
        recorded_at: str  # ISO 8601 UTC: when the command was recorded (the signal's arrival)
        process: str  # the trading process that refused it

    @classmethod
    def first(cls, *, signal_id: str, refusal: dict[str, Any]) -> SignalRefusals:
        return cls._create(cls.FirstRefused, id=signal_refusals_id(signal_id), signal_id=signal_id, **refusal)

    @event(FirstRefused)
    def __init__(
        self, *, signal_id: str, command_id: str, refusal: str, message: str, recorded_at: str, process: str
    ) -> None:
        self.signal_id = signal_id
        self._set(command_id, refusal, message, recorded_at, process)

    @event("Refused")
    def refused(self, *, command_id: str, refusal: str, message: str, recorded_at: str, process: str) -> None:
        self._set(command_id, refusal, message, recorded_at, process)

    def _set(self, command_id: str, refusal: str, message: str, recorded_at: str, process: str) -> None:
        self.command_id = command_id
        self.refusal = Refusal(refusal)
        self.message = message
        self.recorded_at = recorded_at
        self.process = process
