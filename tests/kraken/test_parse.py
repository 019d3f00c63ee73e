"""Contract tests: every relevant fixture of ../shared/kraken/fixtures goes through the parsers."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from execledger.application.exchange import ObservationKind, VenueOrderStatus
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


@pytest.mark.parametrize("name", ORDER_FIXTURES)
def test_every_order_fixture_parses(name):
    result = kraken_fixture(name)["result"]
    orders = parse_orders(result)
    assert orders
    for txid, order in orders.items():
        assert order.txid == txid
        assert order.side in (Side.BUY, Side.SELL)
        assert isinstance(order.volume, Decimal) and order.volume > 0
        assert order.volume_executed <= order.volume
        assert order.opened_at is not None and order.opened_at.tzinfo is not None
        if order.status is VenueOrderStatus.FILLED:
            assert order.volume_executed > 0 and order.average_price is not None and order.closed_at is not None
        if order.volume_executed == 0:
            assert order.average_price is None


def test_closed_with_volume_executed_is_filled_and_price_is_the_average():
    orders = _orders_of("rest_query_orders_official_example_closed_filled.json")
    market = orders["OMMDB2-FSB6Z-7W3HPO"]
    assert market.status is VenueOrderStatus.FILLED
    assert market.average_price == Decimal("30000.0")
    assert market.cost == Decimal("7500.0") and market.fee == Decimal("7.5")
    assert market.closed_at == datetime.fromtimestamp(1688592012.2335, tz=UTC)
    assert market.trade_ids == ("TJUW2K-FLX2N-AR2FLU",)
    stop = orders["OBCMZD-JIEE7-77TH3F"]
    assert stop.order_type == "stop-loss-limit" and stop.stop_price == Decimal("27500.0")


def test_open_with_part_executed_is_partially_filled():
    orders = _orders_of("rest_open_orders_official_example_incl_partial_fill.json")
    partial = orders["OQCLML-BW3P3-BUCMWZ"]
    assert partial.status is VenueOrderStatus.PARTIALLY_FILLED
    assert partial.volume_executed == Decimal("0.375") and partial.volume == Decimal("1.25")
    assert partial.limit_price == Decimal("30010.0") and partial.average_price == Decimal("30010.0")
    assert orders["OB5VMB-B4U2U-DK2WRW"].status is VenueOrderStatus.OPEN
    derived = _orders_of("rest_query_orders_partially_filled_DERIVED_from_official_openorders.json")
    assert derived["OQCLML-BW3P3-BUCMWZ"] == partial


def test_canceled_and_triggered_orders():
    closed = _orders_of("rest_closed_orders_official_example_canceled_sl_tp_limit.json")
    assert {o.status for o in closed.values()} == {VenueOrderStatus.CANCELED}
    assert closed["O37652-RJWRT-IMO74O"].reason == "User requested"
    trailing = _orders_of("rest_query_orders_canceled_trailing_stop_kraken_net.json")["OICRC3-KX7OB-QB2B2S"]
    assert trailing.status is VenueOrderStatus.CANCELED
    # "+1.0000%" is relative: the resolved stop comes from stopprice.
    assert trailing.stop_price == Decimal("3.98640000") and trailing.limit_price == Decimal("4.02660000")
    sl = _orders_of("rest_open_orders_stop_loss_limit_ccxt_static.json")["OIIQBL-6PV3A-7M2AJJ"]
    assert (sl.stop_price, sl.limit_price) == (Decimal("55.00000"), Decimal("54.00000"))
    tp = _orders_of("rest_open_orders_take_profit_ccxt_static.json")["OXCZ7B-EMVZQ-MTJTQJ"]
    assert (tp.stop_price, tp.limit_price) == (Decimal("120.00000"), None)


def test_ccxt_quoted_timestamps_are_accepted():
    order = _orders_of("rest_query_orders_closed_market_filled_ccxt_static.json")["OGMZCL-KC6MC-ZRBGM6"]
    assert order.status is VenueOrderStatus.FILLED and order.average_price == Decimal("71.05741")
    assert order.opened_at.year == 2024


def test_pair_names_become_assetpairs_keys_when_known():
    pairs = PairRegistry.from_asset_pairs(kraken_fixture("rest_asset_pairs_official_example_XXBTZUSD_XETHXXBT.json"))
    order = parse_orders(kraken_fixture("rest_query_orders_official_example_closed_filled.json")["result"], pairs)
    assert {o.pair for o in order.values()} == {"XXBTZUSD"}
    assert _orders_of("rest_query_orders_official_example_closed_filled.json")["OMMDB2-FSB6Z-7W3HPO"].pair == "XBTUSD"


def test_cl_ord_id_is_carried():
    info = dict(
        kraken_fixture("rest_query_orders_open_limit_post_only_ccxt_static.json")["result"]["OR6EGN-KQSEG-AMI6CL"]
    )
    info["cl_ord_id"] = "6d1b345e-2821-40e2-ad83-4ecb18a06876"
    assert parse_order_info("OR6EGN-KQSEG-AMI6CL", info).cl_ord_id == "6d1b345e-2821-40e2-ad83-4ecb18a06876"


def test_an_order_without_its_fields_is_a_clear_error():
    with pytest.raises(UnparseablePayload, match="OX"):
        parse_order_info("OX", {"status": "open"})


@pytest.mark.parametrize("name", TRADE_FIXTURES)
def test_every_trade_fixture_parses(name):
    pairs = PairRegistry.from_asset_pairs(kraken_fixture("rest_asset_pairs_official_example_XXBTZUSD_XETHXXBT.json"))
    trades = parse_trades(kraken_fixture(name)["result"], pairs)
    assert len(trades) == 2
    assert [t.executed_at for t in trades] == sorted(t.executed_at for t in trades)
    for trade in trades:
        assert trade.trade_id.startswith("T") and trade.txid.startswith("O")
        assert trade.volume > 0 and trade.price > 0 and trade.maker is True


def test_trade_values():
    trades = parse_trades(kraken_fixture("rest_trades_history_official_example.json")["result"])
    last = trades[-1]
    assert (last.trade_id, last.txid, last.pair) == ("THVRQM-33VKH-UCI7BS", "OQCLML-BW3P3-BUCMWZ", "XXBTZUSD")
    assert (last.price, last.volume, last.cost, last.fee) == (
        Decimal("30010.00000"),
        Decimal("0.02"),
        Decimal("600.2"),
        Decimal("0"),
    )
    assert last.side is Side.BUY


@pytest.mark.parametrize(("name", "txid"), ADD_ORDER_FIXTURES.items())
def test_add_order_answers(name, txid):
    assert parse_add_order(kraken_fixture(name)["result"]) == txid


def test_validate_only_add_order_has_no_txid():
    assert parse_add_order({"descr": {"order": "buy 1.45 XBTUSD @ limit 27500.0"}}) is None


@pytest.mark.parametrize("name", EXECUTION_FIXTURES)
def test_every_execution_fixture_parses(name):
    message = kraken_fixture(name)
    observations = parse_executions_message(message)
    assert len(observations) == len(message["data"])
    for obs, record in zip(observations, message["data"], strict=False):
        assert obs.txid == record["order_id"] and obs.source == "ws"
        assert obs.sequence == message["sequence"]
        assert obs.timestamp is not None and obs.timestamp.tzinfo is not None
        assert obs.order_status is not None


def test_trade_record_carries_fill_and_cumulative_values():
    (obs,) = parse_executions_message(kraken_fixture("ws_v2_executions_update_trade_docs.json"))
    assert obs.kind is ObservationKind.TRADE
    assert obs.order_status is VenueOrderStatus.PARTIALLY_FILLED
    assert obs.trade_id == "TGBB7L-HT5LX-J3BZ4A" and obs.extra["trade_id"] == "62887576"
    assert (obs.last_qty, obs.last_price) == (Decimal("0.005"), Decimal("26599.9"))
    assert (obs.cum_qty, obs.avg_price) == (Decimal("0.005"), Decimal("26599.9"))
    assert (obs.fee, obs.fee_asset) == (Decimal("0.3458"), "USD")
    assert obs.sequence == 10


def test_snapshot_trades_report_filled_and_exact_decimals():
    observations = parse_executions_message(kraken_fixture("ws_v2_executions_snapshot_trades_kraken_async_rs.json"))
    assert [o.kind for o in observations] == [ObservationKind.TRADE] * 4
    assert {o.order_status for o in observations} == {VenueOrderStatus.FILLED}
    assert observations[3].last_qty == Decimal("153.25931") and observations[3].fee == Decimal("0.014460799")


def test_life_cycle_records():
    pending = parse_executions_message(kraken_fixture("ws_v2_executions_update_pending_new_docs.json"))[0]
    assert (pending.kind, pending.order_status) == (ObservationKind.PENDING_NEW, VenueOrderStatus.PENDING)
    new = parse_executions_message(kraken_fixture("ws_v2_executions_update_new_docs.json"))[0]
    assert (new.kind, new.order_status, new.txid) == (ObservationKind.NEW, VenueOrderStatus.OPEN, pending.txid)
    canceled = parse_executions_message(kraken_fixture("ws_v2_executions_update_canceled_kraken_async_rs.json"))[0]
    assert (canceled.kind, canceled.order_status) == (ObservationKind.CANCELED, VenueOrderStatus.CANCELED)
    assert canceled.reason == "User requested" and canceled.cum_qty == Decimal(0)
    amended = parse_executions_message(kraken_fixture("ws_v2_executions_update_amended_kraken_async_rs.json"))[0]
    assert (amended.kind, amended.order_status) == (ObservationKind.AMENDED, VenueOrderStatus.OPEN)
    assert amended.extra["order_qty"] == "5.1"


def test_unknown_exec_type_is_a_status_observation_and_missing_order_id_is_an_error():
    obs = parse_execution_report({"exec_type": "iceberg_refill", "order_id": "O1", "order_status": "new"}, 3)
    assert obs.kind is ObservationKind.STATUS and obs.extra["exec_type"] == "iceberg_refill"
    with pytest.raises(UnparseablePayload):
        parse_execution_report({"exec_type": "new"}, 1)
