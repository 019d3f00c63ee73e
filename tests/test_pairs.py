"""PairRules against Kraken's AssetPairs fixtures: rounding, minimums, modes, and name lookup."""

from decimal import Decimal as D

import pytest

from execledger.domain.pairs import PairRegistry, PairRules, PairStatus, PriceKind
from execledger.domain.values import OrderType, Side
from tests.conftest import kraken_fixture

ASSET_PAIR_FIXTURES = [
    "rest_asset_pairs_captured_trimmed_XXBTZUSD_XETHZUSD.json",
    "rest_asset_pairs_official_example_XXBTZUSD_XETHXXBT.json",
    "rest_asset_pairs_XBTUSDT_nautilus_capture.json",
]


@pytest.fixture(scope="module")
def captured() -> PairRegistry:
    return PairRegistry.from_asset_pairs(kraken_fixture("rest_asset_pairs_captured_trimmed_XXBTZUSD_XETHZUSD.json"))


@pytest.mark.parametrize("name", ASSET_PAIR_FIXTURES)
def test_every_fixture_entry_parses_with_exact_values(name):
    payload = kraken_fixture(name)
    registry = PairRegistry.from_asset_pairs(payload)
    assert len(registry) == len(payload["result"])
    for key, info in payload["result"].items():
        rules = registry.find(key)
        assert rules is not None and rules.key == key
        assert rules.pair_decimals == info["pair_decimals"] and rules.lot_decimals == info["lot_decimals"]
        assert rules.ordermin == D(info["ordermin"])  # exact strings, never floats
        assert rules.costmin == D(info["costmin"])
        assert rules.status is PairStatus(info["status"])


@pytest.mark.parametrize("name", ["XXBTZUSD", "XBTUSD", "XBT/USD", "BTC/USD", "btcusd", " xbt/usd "])
def test_pair_found_by_key_altname_wsname_and_btc_alias(captured, name):
    assert captured.find(name).key == "XXBTZUSD"


def test_unknown_pair_is_none(captured):
    assert captured.find("DOGE/USD") is None


def test_volume_rounds_down_to_lot_decimals(captured):
    eth = captured.find("ETH/USD")
    assert eth.round_volume(D("0.123456789")) == D("0.12345678")
    zero_g = captured.find("0GEUR")  # lot_decimals 5
    assert zero_g.round_volume(D("40.123459")) == D("40.12345")


@pytest.mark.parametrize(
    ("side", "kind", "price", "expected"),
    [
        (Side.BUY, PriceKind.LIMIT, "64250.07", "64250.0"),  # buy limit rounds down: never pays more than asked
        (Side.SELL, PriceKind.LIMIT, "64250.01", "64250.1"),  # sell limit rounds up: never sells for less
        (Side.SELL, PriceKind.STOP, "64250.09", "64250.0"),  # a sell stop rounds down: away from the market
        (Side.BUY, PriceKind.STOP, "64250.01", "64250.1"),  # a buy stop rounds up
        (Side.SELL, PriceKind.TAKE_PROFIT, "64250.01", "64250.1"),  # a sell take-profit rounds up
        (Side.BUY, PriceKind.TAKE_PROFIT, "64250.09", "64250.0"),  # a buy take-profit rounds down
        (Side.BUY, PriceKind.LIMIT, "64250.1", "64250.1"),  # already on the grid: unchanged
    ],
)
def test_price_rounding_direction(captured, side, kind, price, expected):
    assert captured.find("XBT/USD").round_price(D(price), side, kind) == D(expected)


def test_price_follows_tick_size_coarser_than_decimals():
    rules = PairRules.from_kraken(
        "XTEST",
        {
            "altname": "TEST",
            "base": "T",
            "quote": "ZUSD",
            "pair_decimals": 2,
            "lot_decimals": 8,
            "ordermin": "1",
            "tick_size": "0.05",
        },
    )
    assert rules.round_price(D("10.07"), Side.BUY) == D("10.05")
    assert rules.round_price(D("10.07"), Side.SELL) == D("10.10")


def test_below_ordermin_rejected_as_kraken_would(captured):
    # Kraken: EOrder:Order minimum not met (fixture rest_error_order_minimum_not_met_ccxt_issue_7362.json)
    assert kraken_fixture("rest_error_order_minimum_not_met_ccxt_issue_7362.json")["error"] == [
        "EOrder:Order minimum not met"
    ]
    errors = captured.find("XBT/USD").check_new_order(order_type=OrderType.LIMIT, volume=D("0.00004"), price=D("60000"))
    assert [(e.field, e.rule) for e in errors] == [("quantity", "ordermin")]
    assert "0.00005" in errors[0].message


def test_at_ordermin_accepted(captured):
    assert (
        captured.find("XBT/USD").check_new_order(order_type=OrderType.LIMIT, volume=D("0.00005"), price=D("60000"))
        == []
    )


def test_below_costmin_rejected(captured):
    # 0.002 ETH at 200 USD = 0.4 USD < costmin 0.5
    errors = captured.find("ETH/USD").check_new_order(order_type=OrderType.LIMIT, volume=D("0.002"), price=D("200"))
    assert [(e.field, e.rule) for e in errors] == [("quantity", "costmin")]


def test_volume_rounding_to_zero_rejected(captured):
    rules = captured.find("0GEUR")
    errors = rules.check_new_order(order_type=OrderType.MARKET, volume=rules.round_volume(D("0.000001")), price=None)
    assert errors[0].rule == "volume_rounds_to_zero"


@pytest.mark.parametrize(
    ("status", "order_type", "post_only", "reduce_only", "rule"),
    [
        ("cancel_only", OrderType.LIMIT, False, False, "pair_cancel_only"),
        ("post_only", OrderType.LIMIT, False, False, "pair_post_only"),
        ("post_only", OrderType.LIMIT, True, False, None),
        ("limit_only", OrderType.MARKET, False, False, "pair_limit_only"),
        ("limit_only", OrderType.LIMIT, False, False, None),
        ("reduce_only", OrderType.LIMIT, False, False, "pair_reduce_only"),
        ("reduce_only", OrderType.LIMIT, False, True, None),
    ],
)
def test_pair_status_modes(status, order_type, post_only, reduce_only, rule):
    info = dict(kraken_fixture("rest_asset_pairs_captured_trimmed_XXBTZUSD_XETHZUSD.json")["result"]["XXBTZUSD"])
    info["status"] = status
    rules = PairRules.from_kraken("XXBTZUSD", info)
    errors = rules.check_new_order(
        order_type=order_type, volume=D("0.01"), price=D("60000"), post_only=post_only, reduce_only=reduce_only
    )
    assert [e.rule for e in errors] == ([rule] if rule else [])


def test_unusable_entry_is_a_clear_error():
    with pytest.raises(ValueError, match=r"XBAD.*pair_decimals"):
        PairRules.from_kraken("XBAD", {"altname": "BAD", "base": "B", "quote": "Q", "lot_decimals": 8})


def test_every_spelling_finds_the_same_rules_each_time_and_unknown_names_stay_unknown():
    registry = PairRegistry.from_asset_pairs(kraken_fixture("rest_asset_pairs_captured_trimmed_XXBTZUSD_XETHZUSD.json"))
    for _ in range(2):  # the second time from the names remembered the first time
        assert {registry.find(n).key for n in ("XBTUSD", "xbt/usd", " BTC/USD", "XXBTZUSD")} == {"XXBTZUSD"}
        assert registry.find("DOGE/EUR") is None
