"""Control characters never enter the commands log: every text of a command is checked where it is issued.

The hostile tester's finding: ``POST /v1/orders/{id}/cancel {"reason": "x\\u0000y"}`` was applied (200), and the
projection process then died for good on PostgreSQL ("text fields cannot contain NUL"). Now a command whose
``by``, ``why`` or any text of its payload (nested, keys included) holds a control character (Unicode Cc: C0, DEL,
C1) or a lone surrogate is refused naming the field: InvalidCommand, HTTP 422, CLI exit 2; nothing is recorded.
"""

from __future__ import annotations

import os
import subprocess
from decimal import Decimal as D

import pytest
from click.testing import CliRunner

from execledger.domain.commands import MAX_BY, MAX_WHY, Command, CommandKind, InvalidCommand
from execledger.infrastructure.cli import main
from tests.faults.harness import EXECLEDGER

# `env` is the all-in-one API fixture of tests/test_api.py: imported for pytest (F401), the tests' argument (F811).
from tests.test_api import SIGNAL, env  # noqa: F401

BAD = ["\x00", "\x07", "\t", "\n", "\r", "\x1b[2J", "\x7f", "\x85", "\x9b", "\ud800", "\udfff"]
GOOD = ["plain", "café", "注文を取り消す", "🚨 incident 42", "a\u00a0b", "tab-free – dash"]


def issue(kind=CommandKind.HALT, payload=None, *, by="alice", why="incident"):
    return Command.issue(kind=kind, payload=payload or {}, by=by, why=why, origin="test")


@pytest.mark.parametrize("bad", BAD, ids=lambda c: f"U+{ord(c[0]):04X}")
@pytest.mark.parametrize("field", ["by", "why"])
def test_by_and_why_refuse_control_characters(field, bad):
    with pytest.raises(InvalidCommand) as info:
        issue(**{field: f"x{bad}y"})
    [error] = info.value.errors
    if bad[0] < "\ud800":
        assert error.rule == "control_character" and f"U+{ord(bad[0]):04X} at position 1" in error.message
    else:
        assert error.rule == "invalid_unicode" and "at position 1" in error.message
    assert error.field == field


@pytest.mark.parametrize("bad", BAD, ids=lambda c: f"U+{ord(c[0]):04X}")
def test_every_text_of_a_payload_is_checked_nested_and_keys_included(bad):
    with pytest.raises(InvalidCommand) as info:
        issue(CommandKind.CANCEL_ORDER, {"order": f"O{bad}"})
    assert [e.field for e in info.value.errors] == ["order"]
    signal = {**SIGNAL, "tags": {"note": f"n{bad}", f"k{bad}": "v"}}
    with pytest.raises(InvalidCommand) as info:
        issue(CommandKind.SUBMIT_SIGNAL, {"signal": signal})
    fields = sorted(e.field for e in info.value.errors)
    assert fields == ["signal.tags", "signal.tags.note"], fields
    assert {e.rule for e in info.value.errors} == {"control_character" if bad < "\ud800" else "invalid_unicode"}


@pytest.mark.parametrize("good", GOOD)
def test_ordinary_text_in_any_script_is_kept_exactly(good):
    command = issue(CommandKind.CANCEL_ORDER, {"order": "O-1"}, by=good, why=f"because {good}")
    assert (command.by, command.why) == (good, f"because {good}")


def test_too_long_by_and_why_are_refused_not_cut_short():
    for field, limit in (("by", MAX_BY), ("why", MAX_WHY)):
        assert getattr(issue(**{field: "w" * limit}), field) == "w" * limit
        with pytest.raises(InvalidCommand) as info:
            issue(**{field: "w" * (limit + 1)})
        assert [(e.field, e.rule) for e in info.value.errors] == [(field, "string_too_long")]


def test_resolve_decimals_are_plain_text_within_bounds_and_read_back_the_same():
    # Text as the API and the CLI give it, JSON numbers, and a Decimal beyond the bounds from a Python caller.
    for bad in ("1e999999", "1E+5", "NaN", "Infinity", "-1", "0", "1_000", "1" * 13, 0.1, 70000, True, D("1E+30")):
        with pytest.raises(InvalidCommand) as info:
            issue(CommandKind.RESOLVE_ORDER, {"order": "O", "resolution": "filled", "price": bad})
        assert [e.field for e in info.value.errors] == ["price"], bad
    assert (
        issue(CommandKind.RESOLVE_ORDER, {"order": "O", "resolution": "filled", "price": D("70000.5")}).payload["price"]
        == "70000.5"
    )
    command = issue(CommandKind.RESOLVE_ORDER, {"order": "O", "resolution": "filled", "price": "0.00000001"})
    assert command.payload["price"] == "0.00000001"  # not "1E-8", which the trading process would then refuse
    assert str(command.parsed().price) == "1E-8"


async def test_http_routes_answer_422_naming_the_body_field_and_record_nothing(env):  # noqa: F811
    client = env.client
    before = env.lg.commands.recorder.max_notification_id() or 0
    cases = [
        ("/v1/orders/O-1/cancel", {"reason": "x\u0000y"}, "reason"),
        ("/v1/orders/O-1/cancel", {"reason": "ok", "by": "\u001b[31mroot"}, "by"),
        ("/v1/trading/halt", {"reason": "stop\r\nX-Injected: 1"}, "reason"),
        ("/v1/signals/s\u0085/close", {"reason": "ok"}, "signal_id"),
        ("/v1/orders/O-1/resolve", {"as": "filled", "price": "1e999999", "reason": "ok"}, "price"),
        ("/v1/signals", {**SIGNAL, "signal_id": "t-1", "tags": {"note": "a\u0085b"}}, "tags.note"),
        ("/v1/signals", {**SIGNAL, "signal_id": "t-2", "tags": {"note": "\ud800"}}, "tags.note"),
    ]
    for path, body, field in cases:
        r = await client.post(path, json=body)
        answer = await r.json()
        assert r.status == 422, (path, answer)
        assert field in [e["field"] for e in answer["errors"]], (path, answer)
    assert (env.lg.commands.recorder.max_notification_id() or 0) == before


def test_the_cli_refuses_control_characters_with_exit_2_naming_the_option(tmp_path):
    environ = {k: None for k in os.environ if k.startswith("EXECLEDGER_")}
    environ["EXECLEDGER_DATA_DIR"] = str(tmp_path / "data")
    for args, option in [
        (["halt", "--reason", "stop\x1b[2J"], "--reason"),
        (["cancel", "O-1", "--reason", "ok", "--by", "eve\x00"], "--by"),
        (["close", "s\x07", "--reason", "ok"], "signal_id"),
    ]:
        result = CliRunner().invoke(main, args, env=environ)
        assert result.exit_code == 2 and option in result.output and "control characters" in result.output, args
    assert not (tmp_path / "data").exists()  # refused before the ledger was looked at


def test_a_command_line_that_is_not_utf8_is_refused_naming_the_byte(tmp_path):
    """A real process: argv bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape), which the
    event store could not even encode (a traceback on main)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
    environ["EXECLEDGER_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [os.fsencode(EXECLEDGER), b"halt", b"--reason", b"caf\xe9"], env=environ, capture_output=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert b"--reason: must be UTF-8 text (byte 0xE9 at position 3 is not)" in result.stderr
    assert not (tmp_path / "data").exists()
