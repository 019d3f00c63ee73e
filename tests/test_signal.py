"""TradeSignal validation: every error names its field and rule; plans round once by the pair's rules."""

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execledger.domain.errors import SignalRejected
from execledger.domain.signal import parse_signal, plan_entry
from execledger.infrastructure.pairs import load_default_pairs

PAIRS = load_default_pairs()

GOOD = {
    "signal_id": "s-1",
    "pair": "XBT/USD",
    "side": "buy",
    "order_type": "limit",
    "quantity": "0.01",
    "limit_price": "60000",
    "sl_price": "58000",
    "tp_price": "65000",
}


def rejected(data) -> set[tuple[str, str]]:
    with pytest.raises(SignalRejected) as info:
        parse_signal(data)
    return {(e.field, e.rule) for e in info.value.errors}


def test_good_signal_parses_to_exact_decimals():
    s = parse_signal(GOOD)
    assert s.quantity == D("0.01") and s.limit_price == D("60000") and s.tags == {}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"quantity": "0"}, ("quantity", "greater_than")),
        ({"quantity": "-1"}, ("quantity", "greater_than")),
        ({"quantity": "abc"}, ("quantity", "decimal_parsing")),
        ({"side": "hold"}, ("side", "enum")),
        ({"order_type": "stop"}, ("order_type", "literal_error")),
        ({"signal_id": ""}, ("signal_id", "string_too_short")),
        ({"signal_id": "has space"}, ("signal_id", "string_pattern_mismatch")),
        ({"limit_price": None}, ("limit_price", "required_for_limit")),
        ({"sl_price": "61000"}, ("sl_price", "sl_not_below_entry_for_buy")),
        ({"tp_price": "59000"}, ("tp_price", "tp_not_above_entry_for_buy")),
        ({"timeout_s": 0}, ("timeout_s", "greater_than")),
        ({"surprise": 1}, ("surprise", "extra_forbidden")),
    ],
)
def test_invalid_signal_names_field_and_rule(change, expected):
    assert expected in rejected({**GOOD, **change})


def test_sell_bracket_is_mirrored():
    sell = {**GOOD, "side": "sell", "sl_price": "65000", "tp_price": "58000"}
    assert parse_signal(sell).side == "sell"
    assert ("sl_price", "sl_not_above_entry_for_sell") in rejected({**sell, "sl_price": "59000"})


def test_market_rules():
    market = {**GOOD, "order_type": "market", "limit_price": None}
    assert parse_signal(market).limit_price is None
    assert ("limit_price", "not_allowed_for_market") in rejected({**market, "limit_price": "1"})
    assert ("timeout_s", "not_allowed_for_market") in rejected({**market, "timeout_s": 30})
    assert ("tp_price", "bracket_inverted") in rejected({**market, "sl_price": "70000", "tp_price": "65000"})


def test_all_errors_reported_at_once():
    errors = rejected({**GOOD, "quantity": "-1", "side": "hold"})
    assert {f for f, _ in errors} == {"quantity", "side"}


def test_unknown_pair_named(pairs):
    with pytest.raises(SignalRejected) as info:
        plan_entry(parse_signal({**GOOD, "pair": "DOGE/USD"}), pairs)
    assert [(e.field, e.rule) for e in info.value.errors] == [("pair", "unknown_pair")]


def test_plan_rounds_once_and_reports_what_changed(pairs):
    plan = plan_entry(
        parse_signal(
            {
                **GOOD,
                "pair": "ETHUSD",
                "quantity": "0.123456789",
                "limit_price": "3401.239",
                "sl_price": "3300.005",
                "tp_price": "3550",
            }
        ),
        pairs,
    )
    assert plan.rules.key == "XETHZUSD"
    assert plan.quantity == D("0.12345678") and plan.limit_price == D("3401.23")
    assert plan.sl_price == D("3300.00")  # a sell stop rounds down: away from the market
    assert plan.rounding() == {
        "quantity": "0.123456789 -> 0.12345678",
        "limit_price": "3401.239 -> 3401.23",
        "sl_price": "3300.005 -> 3300",
    }


def test_plan_rejects_below_minimum(pairs):
    with pytest.raises(SignalRejected) as info:
        plan_entry(parse_signal({**GOOD, "quantity": "0.00001"}), pairs)
    assert ("quantity", "ordermin") in {(e.field, e.rule) for e in info.value.errors}


def test_fingerprint_changes_with_content():
    a, b = parse_signal(GOOD), parse_signal({**GOOD, "quantity": "0.02"})
    assert a.fingerprint() == parse_signal(dict(GOOD)).fingerprint() and a.fingerprint() != b.fingerprint()


@given(st.decimals(min_value=D("0.00005"), max_value=D("1000"), places=12))
def test_rounded_volume_never_exceeds_request_and_is_on_lot_grid(quantity):
    plan = plan_entry(parse_signal({**GOOD, "quantity": str(quantity)}), PAIRS)
    assert plan.quantity <= quantity
    assert plan.quantity == plan.quantity.quantize(D("0.00000001"))
    assert quantity - plan.quantity < D("0.00000001")


MARKET = {**GOOD, "order_type": "market", "limit_price": None, "quantity": "0.01"}


@pytest.mark.parametrize(
    ("side", "sl", "tp", "expected"),
    [
        ("buy", "68000", "70000", {("sl_price", "sl_not_below_last_price_for_buy")}),  # the break test's input
        ("buy", "67000", "70000", {("sl_price", "sl_not_below_last_price_for_buy")}),  # at the price: triggers too
        ("buy", "60000", "66000", {("tp_price", "tp_not_above_last_price_for_buy")}),
        ("sell", "66000", "60000", {("sl_price", "sl_not_above_last_price_for_sell")}),
        ("sell", "70000", "68000", {("tp_price", "tp_not_below_last_price_for_sell")}),
    ],
)
def test_a_market_signals_legs_are_checked_against_the_last_price(pairs, side, sl, tp, expected):
    signal = parse_signal({**MARKET, "side": side, "sl_price": sl, "tp_price": tp})
    with pytest.raises(SignalRejected) as info:
        plan_entry(signal, pairs, D("67000"))
    assert {(e.field, e.rule) for e in info.value.errors} == expected
    assert all("last price 67000" in e.message for e in info.value.errors)
    plan_entry(signal, pairs)  # no price known: not checked here (the Placed reason says so)


def test_a_marketable_limit_is_checked_against_the_last_price_a_resting_one_against_its_limit(pairs):
    """A buy limited at 70000 with the market at 67000 fills at about 67000: a stop at 68000 would trigger at once
    though it is below the limit. Resting (limit 60000), the same rule would be wrong: it fills at its limit."""
    marketable = parse_signal({**GOOD, "limit_price": "70000", "sl_price": "68000", "tp_price": "75000"})
    with pytest.raises(SignalRejected) as info:
        plan_entry(marketable, pairs, D("67000"))
    [error] = info.value.errors
    assert (error.field, error.rule) == ("sl_price", "sl_not_below_last_price_for_buy")
    assert "marketable limit" in error.message
    resting = parse_signal({**GOOD, "limit_price": "60000", "sl_price": "58000", "tp_price": "62000"})
    assert plan_entry(resting, pairs, D("67000")).tp_price == D("62000")  # below the market, above its limit: fine
    sell = parse_signal({**GOOD, "side": "sell", "limit_price": "60000", "sl_price": "66000", "tp_price": "50000"})
    with pytest.raises(SignalRejected) as info:  # a sell limited below the market sells at about 67000
        plan_entry(sell, pairs, D("67000"))
    assert [(e.field, e.rule) for e in info.value.errors] == [("sl_price", "sl_not_above_last_price_for_sell")]


def test_a_market_signal_with_its_legs_either_side_of_the_last_price_is_planned(pairs):
    for side, sl, tp in (("buy", "60000", "70000"), ("sell", "70000", "60000")):
        plan = plan_entry(parse_signal({**MARKET, "side": side, "sl_price": sl, "tp_price": tp}), pairs, D("67000"))
        assert (plan.sl_price, plan.tp_price) == (D(sl), D(tp))


def test_each_minimum_breach_names_the_rule_it_breaks(pairs):
    rules = pairs.find("XBT/USD")  # AssetPairs: ordermin 0.00005 XBT, costmin 0.5 USD
    assert rules.minimum_breach(D("0.00004"), D("60000")).rule == "ordermin"
    assert rules.minimum_breach(D("0.00004"), None).rule == "ordermin"
    costmin = rules.minimum_breach(D("0.0001"), D("4000"))  # cost 0.4
    assert costmin.rule == "costmin" and "cost 0.4" in costmin.message and "ordermin" not in costmin.message
    assert rules.minimum_breach(D("0.0001"), None) is None  # no price: the cost is not known
    assert rules.minimum_breach(D("0.0001"), D("5000")) is None  # cost 0.5: exactly the minimum
    assert rules.minimum_breach(D("0"), D("5000")).rule == "volume_rounds_to_zero"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # a sell's take-profit buys back low: 0.0001 at 4000 costs 0.4, below costmin 0.5 (volume meets ordermin)
        ({"side": "sell", "sl_price": "65000", "tp_price": "4000"}, {("tp_price", "costmin")}),
        ({"limit_price": "60000", "sl_price": "4000", "tp_price": "65000"}, {("sl_price", "costmin")}),
        ({"quantity": "0.00004"}, {("quantity", "ordermin")}),  # the entry's own: not repeated for each leg
        ({"limit_price": "4000", "sl_price": "3000", "tp_price": "4500"}, {("quantity", "costmin")}),
    ],
)
def test_the_entry_and_each_leg_are_refused_naming_the_minimum_they_break(pairs, change, expected):
    with pytest.raises(SignalRejected) as info:
        plan_entry(parse_signal({**GOOD, "quantity": "0.0001", **change}), pairs)
    assert {(e.field, e.rule) for e in info.value.errors} == expected


def test_a_market_entrys_cost_is_checked_at_the_last_price(pairs):
    signal = parse_signal({**MARKET, "quantity": "0.0001", "sl_price": None, "tp_price": None})
    with pytest.raises(SignalRejected) as info:
        plan_entry(signal, pairs, D("4000"))
    assert [(e.field, e.rule) for e in info.value.errors] == [("quantity", "costmin")]
    assert plan_entry(signal, pairs, D("60000")).quantity == D("0.0001")
