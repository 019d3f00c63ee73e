"""``"limit_price": "1e999999"`` (the tester's input) and its whole kind, on every decimal the API takes: a 422
naming the field, nothing recorded, never a 500. Checked on main for POST /v1/signals (already a 422 there);
POST /v1/orders/{id}/resolve took "1e999999" as a price until the command's decimals became plain text within
bounds (``domain/commands.py``)."""

from __future__ import annotations

import json

import pytest

# `env` is the all-in-one API fixture of tests/test_api.py: imported for pytest (F401), the tests' argument (F811).
from tests.test_api import SIGNAL, env  # noqa: F401

HUGE = ["1e999999", "-1e999999", "1E+999999", "9" * 5000, "0." + "0" * 5000 + "1", "1e-999999"]
SIGNAL_DECIMALS = ["quantity", "limit_price", "sl_price", "tp_price"]


@pytest.mark.parametrize("field", SIGNAL_DECIMALS)
async def test_a_huge_decimal_in_a_signal_is_a_422_naming_the_field(env, field):  # noqa: F811
    before = env.lg.commands.recorder.max_notification_id() or 0
    for n, value in enumerate(HUGE):
        for as_number in (False, True):
            body = {**SIGNAL, "signal_id": f"huge-{field}-{n}-{as_number}", field: value}
            raw = json.dumps(body)
            if as_number:  # the same digits as a JSON number literal
                raw = raw.replace(f'"{value}"', value)
            r = await env.client.post("/v1/signals", data=raw.encode(), headers={"Content-Type": "application/json"})
            answer = await r.json()
            named = [e["field"] for e in answer.get("errors", [])]
            # 422 naming the field; a number literal the JSON reader refuses (over 30 digits) is a 400 naming the body
            assert (r.status, named) in ((422, [field]), (400, ["body"])), (field, value[:20], as_number, answer)
    assert (env.lg.commands.recorder.max_notification_id() or 0) == before


@pytest.mark.parametrize("field", ["price", "quantity"])
async def test_a_huge_decimal_in_a_resolve_is_a_422_naming_the_field(env, field):  # noqa: F811
    before = env.lg.commands.recorder.max_notification_id() or 0
    for value in HUGE:
        r = await env.client.post("/v1/orders/any/resolve", json={"as": "filled", field: value, "reason": "r"})
        answer = await r.json()
        assert r.status == 422 and field in [e["field"] for e in answer["errors"]], (value[:20], answer)
    assert (env.lg.commands.recorder.max_notification_id() or 0) == before


@pytest.mark.parametrize("value", ["0.0000001234", "0.000000000000000001", "123456789012.5", "1.10", "100"])
def test_a_signal_reads_back_what_it_records(value):
    """The trading process parses the signal the API recorded: str() wrote 0.0000001234 as "1.234E-7", which the
    signal's own rule then refused ("not plain notation"), so a sub-1e-6 price was refused after it was accepted."""
    from execledger.domain.signal import parse_signal

    signal = parse_signal({**SIGNAL, "limit_price": value, "sl_price": None, "tp_price": None})
    recorded = signal.model_dump(mode="json")
    assert recorded["limit_price"] == value
    assert parse_signal(recorded) == signal and parse_signal(recorded).fingerprint() == signal.fingerprint()
