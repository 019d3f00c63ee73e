"""KrakenExchange (the ExchangePort) against a stub Kraken on 127.0.0.1: placement policy, resolution, cancels,
batching, retries, breaker, and that no secret or signature ever shows."""

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from execledger.application.ports import Correction, ErrorClass, OrderRequest, PlaceStatus, VenueOrderStatus
from execledger.domain.values import OrderRole, OrderType, Side
from execledger.infrastructure.kraken.adapter import KrakenExchange, add_order_params
from execledger.infrastructure.kraken.breaker import BreakerState
from execledger.infrastructure.kraken.errors import KrakenTransportError, KrakenVenueError
from execledger.infrastructure.kraken.ratelimit import Tier, TradingRateLimiter
from execledger.infrastructure.kraken.retry import RetryPolicy
from tests.conftest import kraken_fixture
from tests.kraken.conftest import SECRET, Drop, Hang, Http

CL_ORD_ID = "6d1b345e-2821-40e2-ad83-4ecb18a06876"
TXID = "OU22CG-KLAF2-FWUDD7"
DEADLINE = datetime(2026, 1, 2, 3, 4, 35, tzinfo=UTC)


def order_request(**changes) -> OrderRequest:
    values = {
        "client_order_id": CL_ORD_ID,
        "pair": "XXBTZUSD",
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "quantity": Decimal("1.25"),
        "limit_price": Decimal("37500.0"),
        "deadline": DEADLINE,
    }
    values.update(changes)
    return OrderRequest(**values)


def open_order_info(cl_ord_id=CL_ORD_ID):
    info = dict(
        kraken_fixture("rest_query_orders_open_limit_post_only_ccxt_static.json")["result"]["OR6EGN-KQSEG-AMI6CL"]
    )
    info["cl_ord_id"] = cl_ord_id
    return info


@pytest.fixture
def exchange(rest, fake_time):
    retry = RetryPolicy(attempts=4, sleep=fake_time.sleep, wall_clock=lambda: 1_700_000_000.0)
    trading = TradingRateLimiter(Tier.STARTER, clock=fake_time.monotonic, sleep=fake_time.sleep)
    return KrakenExchange(rest, retry=retry, trading_limiter=trading)


def test_add_order_params_render_plain_decimals_and_the_deadline():
    params = add_order_params(order_request(quantity=Decimal("1E-5"), limit_price=Decimal("3.75E+4"), post_only=True))
    assert params == {
        "pair": "XXBTZUSD",
        "type": "buy",
        "ordertype": "limit",
        "volume": "0.00001",
        "price": "37500",
        "cl_ord_id": CL_ORD_ID,
        "oflags": "post",
        "deadline": "2026-01-02T03:04:35.000Z",
    }
    # A triggered order: Kraken's price is the trigger and price2 the limit (REFERENCE.md 3.2).
    stop = add_order_params(
        order_request(
            order_type=OrderType.STOP_LOSS_LIMIT,
            trigger_price=Decimal("37000"),
            limit_price=Decimal("36900.0"),
            deadline=None,
            validate=True,
            reduce_only=True,
        )
    )
    assert (stop["ordertype"], stop["price"], stop["price2"]) == ("stop-loss-limit", "37000", "36900")
    assert stop["validate"] == "true" and stop["reduce_only"] == "true" and "deadline" not in stop
    plain_stop = add_order_params(
        order_request(order_type=OrderType.STOP_LOSS, trigger_price=Decimal("37000"), limit_price=None)
    )
    assert plain_stop["price"] == "37000" and "price2" not in plain_stop
    market = add_order_params(order_request(order_type=OrderType.MARKET, limit_price=None))
    assert "price" not in market and "price2" not in market


async def test_place_acknowledged(stub, exchange):
    stub.on("AddOrder", kraken_fixture("rest_add_order_official_schema_example.json"))
    result = await exchange.place(order_request())
    assert (result.status, result.venue_order_id) == (PlaceStatus.ACKNOWLEDGED, TXID)
    (call,) = stub.calls("AddOrder")
    assert call.params["cl_ord_id"] == CL_ORD_ID and call.params["deadline"] == "2026-01-02T03:04:35.000Z"
    assert exchange.trading.counter("XXBTZUSD").level == pytest.approx(1)


@pytest.mark.parametrize("failure", [Http(502), Http(520), Http(200, "<html>cloudflare</html>"), Drop(), Hang()])
async def test_ambiguous_add_order_is_unknown_and_never_resent(stub, exchange, failure):
    stub.on("AddOrder", failure)
    result = await exchange.place(order_request())
    assert result.status is PlaceStatus.UNKNOWN and result.error_class is ErrorClass.AMBIGUOUS
    assert len(stub.calls("AddOrder")) == 1


async def test_an_unknown_placement_is_found_open_by_its_cl_ord_id_and_not_resent(stub, exchange):
    """The evidence an UNKNOWN placement is resolved by (the engine decides with it: tests/integration)."""
    stub.on("AddOrder", Http(502))
    stub.on("OpenOrders", {"error": [], "result": {"open": {"OR6EGN-KQSEG-AMI6CL": open_order_info()}}})
    request = order_request()
    assert (await exchange.place(request)).status is PlaceStatus.UNKNOWN
    found = await exchange.find_by_client_order_id(request.client_order_id)
    assert (found.venue_order_id, found.client_order_id, found.status) == (
        "OR6EGN-KQSEG-AMI6CL",
        CL_ORD_ID,
        VenueOrderStatus.OPEN,
    )
    (lookup,) = stub.calls("OpenOrders")
    assert (lookup.params["cl_ord_id"], lookup.params["trades"]) == (CL_ORD_ID, "true")
    assert not stub.calls("ClosedOrders")  # found open: closed orders are not read
    assert len(stub.calls("AddOrder")) == 1


async def test_lookup_falls_through_to_closed_orders(stub, exchange):
    closed = kraken_fixture("rest_query_orders_closed_market_filled_ccxt_static.json")["result"]["OGMZCL-KC6MC-ZRBGM6"]
    stub.on("OpenOrders", {"error": [], "result": {"open": {}}})
    stub.on(
        "ClosedOrders",
        {"error": [], "result": {"closed": {"OGMZCL-KC6MC-ZRBGM6": {**closed, "cl_ord_id": CL_ORD_ID}}, "count": 1}},
    )
    order = await exchange.find_by_client_order_id(CL_ORD_ID)
    assert order.venue_order_id == "OGMZCL-KC6MC-ZRBGM6" and order.status is VenueOrderStatus.FILLED
    assert [r.method for r in stub.requests] == ["OpenOrders", "ClosedOrders"]


async def test_an_order_with_another_cl_ord_id_is_not_taken_for_ours(stub, exchange):
    stub.on("OpenOrders", {"error": [], "result": {"open": {"OR6EGN-KQSEG-AMI6CL": open_order_info("other")}}})
    stub.on("ClosedOrders", {"error": [], "result": {"closed": {}, "count": 0}})
    assert await exchange.find_by_client_order_id(CL_ORD_ID) is None


async def test_not_found_means_in_neither_open_nor_closed_orders(stub, exchange):
    """None only after both lists were asked with the cl_ord_id filter. Whether "not found" proves "not placed"
    (only after the AddOrder deadline plus a grace) is the engine's judgement: tests/integration/test_placement.py."""
    stub.on("OpenOrders", {"error": [], "result": {"open": {}}})
    stub.on("ClosedOrders", {"error": [], "result": {"closed": {}, "count": 0}})
    assert await exchange.find_by_client_order_id(CL_ORD_ID) is None
    assert [(r.method, r.params["cl_ord_id"]) for r in stub.requests] == [
        ("OpenOrders", CL_ORD_ID),
        ("ClosedOrders", CL_ORD_ID),
    ]


@pytest.mark.parametrize(
    ("fixture", "error_class", "correction"),
    [
        ("rest_error_order_minimum_not_met_ccxt_issue_7362.json", ErrorClass.PERMANENT, Correction.NONE),
        ("rest_error_invalid_price_decimals_kraken_api_dca_issue_1.json", ErrorClass.NOT_EXECUTED, Correction.REROUND),
        ("rest_error_market_cancel_only_mode_ccxt_comment.json", ErrorClass.NOT_EXECUTED, Correction.NONE),
        ("rest_error_eorder_rate_limit_exceeded_ccxt_pr_4581.json", ErrorClass.NOT_EXECUTED, Correction.NONE),
        ("rest_error_invalid_nonce_ccxt_issue_253.json", ErrorClass.NOT_EXECUTED, Correction.FRESH_NONCE),
    ],
)
async def test_rejections_say_whether_anything_executed_and_what_to_correct(
    stub, exchange, fixture, error_class, correction
):
    """Refusals that executed nothing (NOT_EXECUTED) may be sent again, corrected as the row says; the rest are
    definitive. Either way the adapter itself sent AddOrder exactly once."""
    stub.on("AddOrder", kraken_fixture(fixture))
    result = await exchange.place(order_request())
    assert (result.status, result.error_class, result.correction) == (PlaceStatus.REJECTED, error_class, correction)
    assert result.not_executed is (error_class is ErrorClass.NOT_EXECUTED)
    assert result.error == kraken_fixture(fixture)["error"][0]
    assert len(stub.calls("AddOrder")) == 1


@pytest.mark.parametrize(
    ("error", "leg_correction"),
    [
        ("EOrder:Insufficient funds", Correction.RESIZE),
        ("EOrder:Orders limit exceeded", Correction.NONE),
        ("EOrder:Scheduled orders limit exceeded", Correction.NONE),
    ],
)
async def test_a_refusal_definite_for_an_entry_is_sent_again_for_a_protective_leg(
    stub, exchange, error, leg_correction
):
    """The break test's finding: an entry refused for funds was sent again for up to 60 s (its maximum age). The
    error table's entry column makes it definite (rejected at once, with the venue's reason); a stop-loss refused
    the same way keeps protecting: sent again, resized to what the account holds where the row says so."""
    stub.on("AddOrder", {"error": [error], "result": {}})
    entry = await exchange.place(order_request())
    assert (entry.status, entry.error_class, entry.correction) == (
        PlaceStatus.REJECTED,
        ErrorClass.PERMANENT,
        Correction.NONE,
    )
    assert not entry.not_executed and entry.error == error
    stop = order_request(
        role=OrderRole.STOP_LOSS,
        side=Side.SELL,
        order_type=OrderType.STOP_LOSS,
        trigger_price=Decimal("36000"),
        limit_price=None,
        fee_in_quote=True,
    )
    leg = await exchange.place(stop)
    assert (leg.status, leg.error_class, leg.correction) == (
        PlaceStatus.REJECTED,
        ErrorClass.NOT_EXECUTED,
        leg_correction,
    )
    assert leg.not_executed and len(stub.calls("AddOrder")) == 2


async def test_trading_rate_limit_answer_fills_the_pair_counter(stub, exchange):
    stub.on("AddOrder", kraken_fixture("rest_error_eorder_rate_limit_exceeded_ccxt_pr_4581.json"))
    await exchange.place(order_request())
    assert exchange.trading.counter("XXBTZUSD").level == 60


async def test_engine_error_on_add_order_is_unknown(stub, exchange):
    stub.on("AddOrder", {"error": ["EService:Unavailable"]})
    assert (await exchange.place(order_request())).status is PlaceStatus.UNKNOWN


async def test_breaker_open_means_not_sent(stub, exchange, breaker):
    assert exchange.entry_block() is None
    for _ in range(3):
        breaker.record_failure("502")
    block = exchange.entry_block()
    assert block is not None and "502" in block.reason and block.retry_in_s >= 0.5
    result = await exchange.place(order_request())
    assert result.status is PlaceStatus.NOT_SENT and not stub.calls("AddOrder")
    assert exchange.trading.counter("XXBTZUSD").level == 0  # nothing sent, nothing counted


async def test_cancel_survives_a_502(stub, exchange, fake_time):
    stub.on("CancelOrder", Http(502), kraken_fixture("rest_cancel_order_official_example.json"))
    result = await exchange.cancel(venue_order_id="O1")
    assert result.count == 1 and not result.not_found
    assert len(stub.calls("CancelOrder")) == 2 and len(fake_time.slept) == 1


async def test_a_retried_cancel_that_had_worked_reports_not_found(stub, exchange):
    stub.on("CancelOrder", Drop(), kraken_fixture("rest_error_eorder_unknown_order_ccxt_issue_7338.json"))
    result = await exchange.cancel(client_order_id=CL_ORD_ID)
    assert result.not_found and result.count == 0
    assert stub.calls("CancelOrder")[0].params == {
        "nonce": stub.calls("CancelOrder")[0].params["nonce"],
        "cl_ord_id": CL_ORD_ID,
    }


async def test_cancel_pending_and_permanent(stub, exchange):
    stub.on("CancelOrder", {"error": ["EOrder:Cancel pending"]})
    assert (await exchange.cancel(venue_order_id="O1")).pending
    stub.scripts["CancelOrder"] = [{"error": ["EGeneral:Permission denied"]}]
    result = await exchange.cancel(venue_order_id="O1")
    assert result.error == "EGeneral:Permission denied" and not result.not_found


async def test_cancel_goes_through_an_open_breaker(stub, exchange, breaker):
    for _ in range(3):
        breaker.record_failure("502")
    stub.on("CancelOrder", kraken_fixture("rest_cancel_order_official_example.json"))
    assert (await exchange.cancel(venue_order_id="O1")).count == 1


async def test_cancel_retries_are_bounded_then_raise(stub, exchange):
    stub.on("CancelOrder", Http(503))
    with pytest.raises(KrakenTransportError):
        await exchange.cancel(venue_order_id="O1")
    assert len(stub.calls("CancelOrder")) == 4


async def test_cancel_of_a_young_order_waits_on_the_pair_counter(stub, exchange):
    stub.on("AddOrder", kraken_fixture("rest_add_order_official_schema_example.json"))
    stub.on("CancelOrder", kraken_fixture("rest_cancel_order_official_example.json"))
    await exchange.place(order_request())
    await exchange.cancel(venue_order_id=TXID)
    assert exchange.trading.counter("XXBTZUSD").level == pytest.approx(9)  # add +1, cancel at age 0 +8


async def test_query_orders_is_batched_by_50(stub, exchange):
    template = open_order_info()

    def answer(params):
        return {"error": [], "result": dict.fromkeys(params["txid"].split(","), template)}

    stub.on("QueryOrders", answer)
    txids = [f"O{i:05d}-AAAAA-BBBBBB" for i in range(120)]
    orders = await exchange.query_orders(txids + txids[:3])
    assert set(orders) == set(txids)
    sizes = [len(c.params["txid"].split(",")) for c in stub.calls("QueryOrders")]
    assert sizes == [50, 50, 20] and all(c.params["trades"] == "true" for c in stub.calls("QueryOrders"))


async def test_query_orders_isolates_an_unknown_txid(stub, exchange):
    template = open_order_info()

    def answer(params):
        txids = params["txid"].split(",")
        if "OBAD" in txids:
            return {"error": ["EOrder:Invalid order"]}
        return {"error": [], "result": dict.fromkeys(txids, template)}

    stub.on("QueryOrders", answer)
    orders = await exchange.query_orders(["O1", "O2", "OBAD", "O3"])
    assert set(orders) == {"O1", "O2", "O3"}


async def test_reads_retry_transient_failures_but_not_permanent_ones(stub, exchange, fake_time):
    stub.on("OpenOrders", Http(502), Hang(), kraken_fixture("rest_open_orders_official_example_incl_partial_fill.json"))
    orders = await exchange.open_orders()
    assert {o.status for o in orders} == {VenueOrderStatus.OPEN, VenueOrderStatus.PARTIALLY_FILLED}
    assert len(stub.calls("OpenOrders")) == 3 and len(fake_time.slept) == 2
    assert all(0 <= s <= 8.0 for s in fake_time.slept)
    stub.scripts["OpenOrders"] = [kraken_fixture("rest_error_permission_denied_kraken_async_rs.json")]
    with pytest.raises(KrakenVenueError):
        await exchange.open_orders()
    assert len(stub.calls("OpenOrders")) == 4


async def test_throttled_waits_until_the_time_kraken_names(stub, exchange, fake_time):
    stub.on("OpenOrders", {"error": ["EService:Throttled: 1700000030"]}, {"error": [], "result": {"open": {}}})
    assert await exchange.open_orders() == []
    assert fake_time.slept == [pytest.approx(30.0)]


async def test_fills_since_reads_every_page(stub, exchange):
    trades = kraken_fixture("rest_trades_history_official_example.json")["result"]["trades"]
    (first_id, first), (second_id, second) = trades.items()
    stub.on(
        "TradesHistory",
        {"error": [], "result": {"trades": {first_id: first}, "count": 2}},
        {"error": [], "result": {"trades": {second_id: second}, "count": 2}},
    )
    since = datetime(2023, 7, 1, tzinfo=UTC)
    got = await exchange.fills_since(since)
    assert [t.trade_id for t in got] == [second_id, first_id]  # oldest first
    calls = stub.calls("TradesHistory")
    assert [c.params["ofs"] for c in calls] == ["0", "1"]
    assert float(calls[0].params["start"]) == since.timestamp()


async def test_dead_mans_switch(stub, exchange):
    stub.on("CancelAllOrdersAfter", kraken_fixture("rest_cancel_all_orders_after_official_example.json"))
    assert await exchange.cancel_all_after(60) == datetime(2023, 3, 24, 17, 42, 56, tzinfo=UTC)
    stub.scripts["CancelAllOrdersAfter"] = [{"error": [], "result": {"currentTime": "x", "triggerTime": "0"}}]
    assert await exchange.cancel_all_after(0) is None
    assert stub.calls("CancelAllOrdersAfter")[-1].params["timeout"] == "0"


async def test_cancel_all_and_asset_pairs_and_token(stub, exchange):
    stub.on("CancelAll", {"error": [], "result": {"count": 4}})
    stub.on("AssetPairs", kraken_fixture("rest_asset_pairs_captured_trimmed_XXBTZUSD_XETHZUSD.json"))
    stub.on("GetWebSocketsToken", kraken_fixture("rest_get_websockets_token_official_example.json"))
    assert await exchange.cancel_all() == 4
    pairs = await exchange.asset_pairs()
    assert pairs.find("BTC/USD").key == "XXBTZUSD"
    assert await exchange.websocket_token() == "1Dwc4lzSwNWOAwkMdqhssNNFhs1ed606d1WcF3XfEMw"


async def test_no_secret_or_signature_in_logs_exceptions_results_or_reprs(stub, exchange, breaker, caplog):
    """Drive every path that logs or raises, with DEBUG logging on, and look for the secret and each API-Sign."""
    caplog.set_level(logging.DEBUG)
    shown: list[str] = [repr(exchange), str(exchange), repr(exchange.rest), repr(exchange.rest.credentials)]
    stub.on(
        "AddOrder",
        kraken_fixture("rest_add_order_official_schema_example.json"),
        Http(502),
        {"error": ["EAPI:Invalid signature"]},
    )
    stub.on("OpenOrders", kraken_fixture("rest_error_invalid_nonce_ccxt_issue_253.json"), Hang())
    stub.on("Balance", kraken_fixture("rest_error_invalid_key_docs.json"))
    for _ in range(3):
        shown.append(repr(await exchange.place(order_request())))
    for call in (exchange.open_orders(), exchange.rest.validate_credentials()):
        try:
            await call
        except Exception as exc:
            shown += [str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__)]
    shown += [record.getMessage() for record in caplog.records]
    shown += [repr(record.args) for record in caplog.records]
    signatures = [r.headers["API-Sign"] for r in stub.requests]
    assert signatures and caplog.records
    text = "\n".join(shown)
    assert SECRET not in text and SECRET[:20] not in text
    for signature in signatures:
        assert signature not in text
    assert breaker.state in (BreakerState.CLOSED, BreakerState.OPEN)


async def test_a_throttle_wait_beyond_the_limit_means_not_sent(stub, rest, fake_time):
    trading = TradingRateLimiter(Tier.STARTER, clock=fake_time.monotonic, sleep=fake_time.sleep, max_wait_s=0.5)
    exchange = KrakenExchange(rest, trading_limiter=trading)
    trading.on_rate_limited("XXBTZUSD")
    result = await exchange.place(order_request())
    assert result.status is PlaceStatus.NOT_SENT and result.error_class is ErrorClass.RATE_LIMITED
    assert not stub.calls("AddOrder") and not fake_time.slept


def test_from_settings_wires_the_adapter(tmp_path):
    from execledger.infrastructure.settings import Settings
    from tests.kraken.conftest import KEY

    settings = Settings(
        kraken_url="http://127.0.0.1:8765",
        kraken_key=KEY,
        kraken_secret=SECRET,
        data_dir=tmp_path,
        kraken_ws_url="ws://127.0.0.1:8765/v2",
    )
    exchange = KrakenExchange.from_settings(settings)
    assert exchange.rest.base_url == "http://127.0.0.1:8765" and exchange.ws_url == "ws://127.0.0.1:8765/v2"
    assert exchange.rest.breaker is not None and exchange.rest.limiter is not None and exchange.trading is not None
    assert SECRET not in repr(exchange)
    with pytest.raises(ValueError, match="https"):
        KrakenExchange.from_settings(
            Settings(kraken_url="http://api.kraken.com", kraken_key=KEY, kraken_secret=SECRET, data_dir=tmp_path)
        )
    with pytest.raises(ValueError, match="EXECLEDGER_KRAKEN_URL"):
        KrakenExchange.from_settings(Settings(kraken_key=KEY, kraken_secret=SECRET, data_dir=tmp_path))


def test_the_adapter_satisfies_the_port():
    import inspect

    from execledger.application.ports import ExchangePort

    for name, member in inspect.getmembers(ExchangePort, inspect.isfunction):
        if not name.startswith("_"):
            ours = getattr(KrakenExchange, name)
            assert inspect.signature(ours).parameters.keys() == inspect.signature(member).parameters.keys(), name
