"""Contract tests: every relevant fixture of ../shared/kraken/fixtures goes through the parsers."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from execledger.application.ports import FillReport, OrderStatusReport, VenueOrderStatus
from execledger.domain.pairs import PairRegistry
from execledger.domain.values import Side
from execledger.infrastructure.kraken.parse import (
    UnparseablePayload,
    parse_add_order,
    parse_execution_report,
    parse_executions_message,
    parse_order_info,
    parse_orders,
    parse_trades,
)
from tests.conftest import FIXTURES, kraken_fixture
from tests.kraken.test_errors import REST_ERROR_FIXTURES, WS_ERROR_FIXTURES

ORDER_FIXTURES = [
    "rest_query_orders_official_example_closed_filled.json",
    "rest_query_orders_open_limit_post_only_ccxt_static.json",
    "rest_query_orders_closed_market_filled_ccxt_static.json",
    "rest_query_orders_canceled_trailing_stop_kraken_net.json",
    "rest_query_orders_partially_filled_DERIVED_from_official_openorders.json",
    "rest_open_orders_official_example_incl_partial_fill.json",
    "rest_open_orders_stop_loss_limit_ccxt_static.json",
    "rest_open_orders_take_profit_ccxt_static.json",
    "rest_open_orders_trailing_stop_ccxt_static.json",
    "rest_closed_orders_official_example_canceled_sl_tp_limit.json",
]
TRADE_FIXTURES = ["rest_trades_history_official_example.json", "rest_query_trades_official_example.json"]
EXECUTION_FIXTURES = [
    "ws_v2_executions_snapshot_trades_kraken_async_rs.json",
    "ws_v2_executions_update_amended_kraken_async_rs.json",
    "ws_v2_executions_update_canceled_kraken_async_rs.json",
    "ws_v2_executions_update_new_docs.json",
    "ws_v2_executions_update_new_kraken_async_rs.json",
    "ws_v2_executions_update_pending_new_docs.json",
    "ws_v2_executions_update_pending_new_limit_kraken_async_rs.json",
    "ws_v2_executions_update_pending_new_stop_loss_limit_kraken_async_rs.json",
    "ws_v2_executions_update_trade_docs.json",
]
ADD_ORDER_FIXTURES = {
    "rest_add_order_official_schema_example.json": "OU22CG-KLAF2-FWUDD7",
    "rest_add_order_market_ccxt_static.json": "OL7LNO-R4SAD-6UINEU",
    "rest_add_order_official_example_limit_with_conditional_close.json": "OUF4EM-FRGI2-MQMWZD",
}
# Used by the adapter and stream tests (answers the stub server gives), or by PairRegistry (tested there).
USED_ELSEWHERE = {
    "rest_cancel_order_official_example.json",
    "rest_cancel_all_orders_after_official_example.json",
    "rest_get_websockets_token_official_example.json",
    "rest_time_official_example.json",
    "rest_asset_pairs_official_example_XXBTZUSD_XETHXXBT.json",
    "rest_asset_pairs_captured_trimmed_XXBTZUSD_XETHZUSD.json",
    "rest_asset_pairs_XBTUSDT_nautilus_capture.json",
    "ws_v2_executions_subscribe_ack_docs.json",
    "ws_v2_executions_subscribe_ack_with_warnings_kraken_async_rs.json",
    "ws_v2_executions_subscribe_request_docs.json",
    "ws_v2_heartbeat_docs.json",
    "ws_v2_status_update_kraken_async_rs.json",
    "ws_v2_pong_kraken_async_rs.json",
    "ws_v2_ping_request_docs.json",
}
# Not relevant: the adapter does not use these methods (batch add/cancel, amend, edit, WS order entry, status).
NOT_USED = {
    "rest_add_order_batch_official_schema_example.json",
    "rest_amend_order_official_schema_example.json",
    "rest_cancel_order_batch_official_example.json",
    "rest_edit_order_official_example.json",
    "rest_order_amends_official_example.json",
    "rest_system_status_official_example.json",
}


def test_every_fixture_is_accounted_for():
    """A new fixture in ../shared must be fed to a parser or listed as unused, with its reason, here."""
    covered = (
        set(ORDER_FIXTURES)
        | set(TRADE_FIXTURES)
        | set(EXECUTION_FIXTURES)
        | set(ADD_ORDER_FIXTURES)
        | USED_ELSEWHERE
        | NOT_USED
        | {n for n, *_ in REST_ERROR_FIXTURES}
        | {n for n, *_ in WS_ERROR_FIXTURES}
    )
    ws_order_entry = {
        p.name
        for p in FIXTURES.glob("ws_v2_*.json")
        if p.name.split("_")[2] in ("add", "amend", "batch", "cancel", "edit", "error")
    }
    unaccounted = {p.name for p in FIXTURES.glob("*.json")} - covered - ws_order_entry
    assert not unaccounted


def _orders_of(name):
    return parse_orders(kraken_fixture(name)["result"], pairs=None)


def _asset_pairs():
    return PairRegistry.from_asset_pairs(kraken_fixture("rest_asset_pairs_official_example_XXBTZUSD_XETHXXBT.json"))


@pytest.mark.parametrize("name", ORDER_FIXTURES)
def test_every_order_fixture_parses(name):
    result = kraken_fixture(name)["result"]
    orders = parse_orders(result)
    assert orders
    for txid, order in orders.items():
        assert isinstance(order, OrderStatusReport)
        assert order.venue_order_id == txid and order.source == "rest"
        assert order.side in (Side.BUY, Side.SELL)
        assert isinstance(order.quantity, Decimal) and order.quantity > 0
        assert order.filled_qty <= order.quantity and order.leaves_qty == order.quantity - order.filled_qty
        assert order.ts_accepted is not None and order.ts_accepted.tzinfo is not None
        assert order.is_terminal == (order.status not in (VenueOrderStatus.OPEN, VenueOrderStatus.PARTIALLY_FILLED))
        if order.status is VenueOrderStatus.FILLED:
            assert order.filled_qty > 0 and order.avg_px is not None and order.ts_last is not None
        if order.filled_qty == 0:
            assert order.avg_px is None


def test_closed_with_volume_executed_is_filled_and_price_is_the_average():
    orders = _orders_of("rest_query_orders_official_example_closed_filled.json")
    market = orders["OMMDB2-FSB6Z-7W3HPO"]
    assert market.status is VenueOrderStatus.FILLED and market.is_terminal and market.leaves_qty == 0
    assert market.avg_px == Decimal("30000.0")
    assert market.avg_px * market.filled_qty == Decimal("7500.0") and market.commission == Decimal("7.5")
    assert market.ts_last == datetime.fromtimestamp(1688592012.2335, tz=UTC)
    assert market.trade_ids == ("TJUW2K-FLX2N-AR2FLU",)
    stop = orders["OBCMZD-JIEE7-77TH3F"]
    assert stop.order_type == "stop-loss-limit" and stop.trigger_price == Decimal("27500.0")


def test_open_with_part_executed_is_partially_filled():
    orders = _orders_of("rest_open_orders_official_example_incl_partial_fill.json")
    partial = orders["OQCLML-BW3P3-BUCMWZ"]
    assert partial.status is VenueOrderStatus.PARTIALLY_FILLED and not partial.is_terminal
    assert partial.filled_qty == Decimal("0.375") and partial.quantity == Decimal("1.25")
    assert partial.leaves_qty == Decimal("0.875")
    assert partial.limit_price == Decimal("30010.0") and partial.avg_px == Decimal("30010.0")
    assert orders["OB5VMB-B4U2U-DK2WRW"].status is VenueOrderStatus.OPEN
    derived = _orders_of("rest_query_orders_partially_filled_DERIVED_from_official_openorders.json")
    assert derived["OQCLML-BW3P3-BUCMWZ"] == partial


def test_canceled_and_triggered_orders():
    closed = _orders_of("rest_closed_orders_official_example_canceled_sl_tp_limit.json")
    assert {o.status for o in closed.values()} == {VenueOrderStatus.CANCELED}
    assert closed["O37652-RJWRT-IMO74O"].reason == "User requested"
    trailing = _orders_of("rest_query_orders_canceled_trailing_stop_kraken_net.json")["OICRC3-KX7OB-QB2B2S"]
    assert trailing.status is VenueOrderStatus.CANCELED
    # "+1.0000%" is relative: the resolved trigger comes from stopprice.
    assert trailing.trigger_price == Decimal("3.98640000") and trailing.limit_price == Decimal("4.02660000")
    # Kraken's price is a triggered order's trigger and price2 its limit.
    sl = _orders_of("rest_open_orders_stop_loss_limit_ccxt_static.json")["OIIQBL-6PV3A-7M2AJJ"]
    assert (sl.trigger_price, sl.limit_price) == (Decimal("55.00000"), Decimal("54.00000"))
    tp = _orders_of("rest_open_orders_take_profit_ccxt_static.json")["OXCZ7B-EMVZQ-MTJTQJ"]
    assert (tp.trigger_price, tp.limit_price) == (Decimal("120.00000"), None)


def test_ccxt_quoted_timestamps_are_accepted():
    order = _orders_of("rest_query_orders_closed_market_filled_ccxt_static.json")["OGMZCL-KC6MC-ZRBGM6"]
    assert order.status is VenueOrderStatus.FILLED and order.avg_px == Decimal("71.05741")
    assert order.ts_accepted.year == 2024


def test_pair_names_become_assetpairs_keys_when_known():
    order = parse_orders(
        kraken_fixture("rest_query_orders_official_example_closed_filled.json")["result"], _asset_pairs()
    )
    assert {o.pair for o in order.values()} == {"XXBTZUSD"}
    assert _orders_of("rest_query_orders_official_example_closed_filled.json")["OMMDB2-FSB6Z-7W3HPO"].pair == "XBTUSD"


def test_an_orders_fee_asset_comes_from_its_oflags():
    # REST trades name no fee asset; the order's oflags do (fcib: the base, fciq: the quote), once the pair is known.
    result = kraken_fixture("rest_query_orders_official_example_closed_filled.json")["result"]
    orders = parse_orders(result, _asset_pairs())
    assert orders["OMMDB2-FSB6Z-7W3HPO"].commission_asset == "XXBT"  # oflags fcib
    assert orders["OBCMZD-JIEE7-77TH3F"].commission_asset == "ZUSD"  # oflags fciq
    assert parse_orders(result)["OMMDB2-FSB6Z-7W3HPO"].commission_asset is None  # the pair's rules unknown
    info = dict(result["OMMDB2-FSB6Z-7W3HPO"], oflags="post")
    assert parse_order_info("OMMDB2-FSB6Z-7W3HPO", info, _asset_pairs()).commission_asset is None  # not named


def test_cl_ord_id_is_carried():
    info = dict(
        kraken_fixture("rest_query_orders_open_limit_post_only_ccxt_static.json")["result"]["OR6EGN-KQSEG-AMI6CL"]
    )
    info["cl_ord_id"] = "6d1b345e-2821-40e2-ad83-4ecb18a06876"
    order = parse_order_info("OR6EGN-KQSEG-AMI6CL", info)
    assert order.client_order_id == "6d1b345e-2821-40e2-ad83-4ecb18a06876"


def test_an_order_without_its_fields_is_a_clear_error():
    with pytest.raises(UnparseablePayload, match="OX"):
        parse_order_info("OX", {"status": "open"})


@pytest.mark.parametrize("name", TRADE_FIXTURES)
def test_every_trade_fixture_parses(name):
    pairs = _asset_pairs()
    trades = parse_trades(kraken_fixture(name)["result"], pairs)
    assert len(trades) == 2
    assert [t.ts_event for t in trades] == sorted(t.ts_event for t in trades)
    for trade in trades:
        assert isinstance(trade, FillReport) and trade.source == "rest"
        assert trade.trade_id.startswith("T") and trade.venue_order_id.startswith("O")
        assert trade.last_qty > 0 and trade.last_px > 0 and trade.liquidity_maker is True
        # REST names no fee asset: it is the pair's quote (unknown for a pair the registry does not hold).
        rules = pairs.find(trade.pair)
        assert trade.commission_asset == (rules.quote if rules is not None else "")


def test_trade_values():
    result = kraken_fixture("rest_trades_history_official_example.json")["result"]
    last = parse_trades(result)[-1]
    assert (last.trade_id, last.venue_order_id, last.pair) == ("THVRQM-33VKH-UCI7BS", "OQCLML-BW3P3-BUCMWZ", "XXBTZUSD")
    assert (last.last_px, last.last_qty, last.commission) == (Decimal("30010.00000"), Decimal("0.02"), Decimal("0"))
    assert last.last_px * last.last_qty == Decimal("600.2")  # the fixture's cost
    assert last.side is Side.BUY
    assert last.commission_asset == ""  # without the pair's rules the quote is not known...
    assert parse_trades(result, _asset_pairs())[-1].commission_asset == "ZUSD"  # ...with them it is


@pytest.mark.parametrize(("name", "txid"), ADD_ORDER_FIXTURES.items())
def test_add_order_answers(name, txid):
    assert parse_add_order(kraken_fixture(name)["result"]) == txid


def test_validate_only_add_order_has_no_txid():
    assert parse_add_order({"descr": {"order": "buy 1.45 XBTUSD @ limit 27500.0"}}) is None


@pytest.mark.parametrize("name", EXECUTION_FIXTURES)
def test_every_execution_fixture_parses(name):
    """Each record gives its FillReport (a trade) and then its OrderStatusReport, in the message's order."""
    message = kraken_fixture(name)
    reports = parse_executions_message(message)
    expected = []
    for record in message["data"]:
        if record["exec_type"] == "trade":
            expected.append((FillReport, record["order_id"]))
        expected.append((OrderStatusReport, record["order_id"]))
    assert [(type(r), r.venue_order_id) for r in reports] == expected
    for report in reports:
        assert report.source == "ws"
        if isinstance(report, OrderStatusReport):
            assert report.sequence == message["sequence"]
            assert report.ts_last is not None and report.ts_last.tzinfo is not None
        else:
            assert report.ts_event.tzinfo is not None and report.trade_id


def test_trade_record_carries_fill_and_cumulative_values():
    fill, status = parse_executions_message(kraken_fixture("ws_v2_executions_update_trade_docs.json"))
    assert isinstance(fill, FillReport) and isinstance(status, OrderStatusReport)
    assert fill.trade_id == "TGBB7L-HT5LX-J3BZ4A"  # exec_id: the trade txid, the id REST gives the same fill
    assert (fill.venue_order_id, fill.side, fill.liquidity_maker) == ("OK4GJX-KSTLS-7DZZO5", Side.SELL, False)
    assert (fill.last_qty, fill.last_px) == (Decimal("0.005"), Decimal("26599.9"))
    assert (fill.commission, fill.commission_asset) == (Decimal("0.3458"), "USD")
    assert fill.ts_event == datetime(2023, 9, 22, 10, 33, 5, 709993, tzinfo=UTC)
    assert status.status is VenueOrderStatus.PARTIALLY_FILLED
    assert (status.filled_qty, status.avg_px) == (Decimal("0.005"), Decimal("26599.9"))
    assert status.sequence == 10


def test_a_ws_fee_asset_is_named_as_rest_names_it_when_the_pair_is_known():
    """REST trades say ZUSD for the same fee WS v2 calls USD: one fill, one asset name, whichever path."""
    message = kraken_fixture("ws_v2_executions_update_trade_docs.json")
    fill, _ = parse_executions_message(message, _asset_pairs())
    assert (fill.pair, fill.commission_asset) == ("XXBTZUSD", "ZUSD")
    record = {**message["data"][0], "fees": [{"asset": "BTC", "qty": 0.000026}]}  # fee in the base (oflags=fcib)
    base_fee, _ = parse_executions_message({**message, "data": [record]}, _asset_pairs())
    assert (base_fee.commission, base_fee.commission_asset) == (Decimal("0.000026"), "XXBT")


def test_snapshot_trades_report_filled_and_exact_decimals():
    reports = parse_executions_message(kraken_fixture("ws_v2_executions_snapshot_trades_kraken_async_rs.json"))
    fills = [r for r in reports if isinstance(r, FillReport)]
    statuses = [r for r in reports if isinstance(r, OrderStatusReport)]
    assert len(fills) == len(statuses) == 4
    assert {s.status for s in statuses} == {VenueOrderStatus.FILLED} and all(s.is_terminal for s in statuses)
    assert fills[3].last_qty == Decimal("153.25931") and fills[3].commission == Decimal("0.014460799")
    assert fills[1].liquidity_maker is True and fills[0].liquidity_maker is False


def test_symbols_become_assetpairs_keys_when_known():
    pairs = _asset_pairs()
    fill, status = parse_executions_message(kraken_fixture("ws_v2_executions_update_trade_docs.json"), pairs)
    assert fill.pair == status.pair == "XXBTZUSD"


def test_life_cycle_records():
    (pending,) = parse_executions_message(kraken_fixture("ws_v2_executions_update_pending_new_docs.json"))
    assert pending.status is VenueOrderStatus.PENDING
    assert (pending.quantity, pending.limit_price) == (Decimal("0.005"), Decimal("26500.0"))
    (new,) = parse_executions_message(kraken_fixture("ws_v2_executions_update_new_docs.json"))
    assert (new.status, new.venue_order_id) == (VenueOrderStatus.OPEN, pending.venue_order_id)
    assert new.quantity is None and new.leaves_qty is None  # sparse: what the record omits is unknown, not zero
    (canceled,) = parse_executions_message(kraken_fixture("ws_v2_executions_update_canceled_kraken_async_rs.json"))
    assert canceled.status is VenueOrderStatus.CANCELED and canceled.is_terminal
    assert canceled.reason == "User requested" and canceled.filled_qty == Decimal(0)
    (amended,) = parse_executions_message(kraken_fixture("ws_v2_executions_update_amended_kraken_async_rs.json"))
    assert amended.status is VenueOrderStatus.OPEN
    assert (amended.quantity, amended.limit_price) == (Decimal("5.1"), Decimal("0.96"))
    (stop,) = parse_executions_message(
        kraken_fixture("ws_v2_executions_update_pending_new_stop_loss_limit_kraken_async_rs.json")
    )
    assert stop.order_type == "stop-loss-limit" and stop.trigger_price is not None


def test_a_record_reports_the_status_it_carries_or_implies_and_missing_order_id_is_an_error():
    (refill,) = parse_execution_report({"exec_type": "iceberg_refill", "order_id": "O1", "order_status": "new"}, 3)
    assert (refill.status, refill.sequence) == (VenueOrderStatus.OPEN, 3)
    # No order_status: a known exec_type implies one; a record that says nothing about the status gives nothing.
    (expired,) = parse_execution_report({"exec_type": "expired", "order_id": "O1"}, 4)
    assert expired.status is VenueOrderStatus.EXPIRED
    assert parse_execution_report({"exec_type": "iceberg_refill", "order_id": "O1"}, 5) == []
    with pytest.raises(UnparseablePayload):
        parse_execution_report({"exec_type": "new"}, 1)
