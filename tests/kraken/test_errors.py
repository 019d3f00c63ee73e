"""Contract tests of the error policy table: every error fixture, the prefix rules, and transport failures."""

import pytest

from execledger.application.ports import Correction, ErrorClass
from execledger.infrastructure.kraken.errors import (
    ERROR_TABLE,
    Hint,
    KrakenTransportError,
    KrakenVenueError,
    Transport,
    classify_error,
    classify_transport,
    retry_at,
    rule_for,
    trips_breaker,
)
from tests.conftest import kraken_fixture

R, L, P, A, N, X = (
    ErrorClass.RETRYABLE,
    ErrorClass.RATE_LIMITED,
    ErrorClass.PERMANENT,
    ErrorClass.AMBIGUOUS,
    ErrorClass.NOT_FOUND,
    ErrorClass.NOT_EXECUTED,
)

# Every REST error fixture in ../shared/kraken/fixtures: (file, class for a read/cancel, class for an AddOrder).
REST_ERROR_FIXTURES = [
    ("rest_error_eorder_rate_limit_exceeded_ccxt_pr_4581.json", L, X),
    ("rest_error_eorder_unknown_order_ccxt_issue_7338.json", N, N),
    ("rest_error_general_too_many_requests_ccxt_comment.json", L, X),
    ("rest_error_invalid_arguments_ordertype_docs.json", P, P),
    ("rest_error_invalid_arguments_volume_blackbird_issue_312.json", P, X),
    ("rest_error_invalid_key_docs.json", P, P),
    ("rest_error_invalid_key_kraken_async_rs.json", P, P),
    ("rest_error_invalid_nonce_ccxt_issue_253.json", P, X),
    ("rest_error_invalid_price_decimals_kraken_api_dca_issue_1.json", P, X),
    ("rest_error_market_cancel_only_mode_ccxt_comment.json", P, X),
    ("rest_error_market_post_only_mode_ccxt_comment.json", P, X),
    ("rest_error_order_minimum_not_met_ccxt_issue_7362.json", P, P),
    ("rest_error_permission_denied_kraken_async_rs.json", P, P),
    ("rest_error_unknown_asset_pair_kraken_async_rs.json", P, P),
]

# WS v2 error acks carry one string in ``error``; those with a Kraken code go through the same table.
WS_ERROR_FIXTURES = [
    ("ws_v2_error_add_order_invalid_arguments_kraken_async_rs.json", P, P),
    ("ws_v2_error_add_order_permission_denied_kraken_async_rs.json", P, P),
    ("ws_v2_error_subscribe_invalid_session_kraken_async_rs.json", R, R),
    ("ws_v2_amend_order_response_error_kraken_async_rs.json", P, A),  # no Kraken code: unknown string
]


@pytest.mark.parametrize(("name", "read", "write"), REST_ERROR_FIXTURES)
def test_every_rest_error_fixture_is_classified(name, read, write):
    payload = kraken_fixture(name)
    assert payload["error"], "an error fixture carries a non-empty error array"
    message = payload["error"][0]
    assert rule_for(message).prefix, f"{message!r} must match a table row, not the unknown-string default"
    assert classify_error(message, write=False) is read
    assert classify_error(message, write=True) is write
    error = KrakenVenueError("X", payload["error"], write=True)
    assert error.error_class is write and message in str(error)


@pytest.mark.parametrize(("name", "read", "write"), WS_ERROR_FIXTURES)
def test_ws_error_acks_are_classified(name, read, write):
    payload = kraken_fixture(name)
    assert payload["success"] is False
    assert classify_error(payload["error"], write=False) is read
    assert classify_error(payload["error"], write=True) is write


def test_success_fixtures_carry_no_error():
    for name in (
        "rest_add_order_official_schema_example.json",
        "rest_cancel_order_official_example.json",
        "rest_query_orders_official_example_closed_filled.json",
    ):
        assert kraken_fixture(name)["error"] == []


@pytest.mark.parametrize(
    ("message", "read", "write", "hint"),
    [
        ("EOrder:Invalid price:XXBTZEUR price can only be specified up to 1 decimals.", P, X, Hint.NONE),
        ("EService:Throttled: 1700000000", L, X, Hint.RETRY_AT),
        ("EService: Throttled: 1700000000", L, X, Hint.RETRY_AT),  # the docs' spelling, with spaces
        ("EService:Unavailable", R, A, Hint.VENUE_DOWN),
        ("EService:Busy", R, A, Hint.VENUE_DOWN),
        ("EGeneral:Internal error", R, A, Hint.NONE),
        ("EDatabase:Internal error", R, A, Hint.NONE),
        ("EService:Deadline elapsed", P, X, Hint.NONE),
        ("EOrder:Invalid order", N, N, Hint.NONE),
        ("EOrder:Cancel pending", P, P, Hint.CANCEL_PENDING),
        ("EAPI:Invalid nonce", P, X, Hint.FRESH_NONCE),
        ("EAPI:Rate limit exceeded", L, X, Hint.NONE),
        ("EOrder:Domain rate limit exceeded", L, X, Hint.NONE),
        ("EQuery:Unknown asset", P, P, Hint.NONE),
        ("EQuery:Unknown asset pair", P, P, Hint.NONE),
        ("EGeneral:Temporary lockout", P, P, Hint.NONE),
        ("ESession:Invalid session", R, R, Hint.REFRESH_TOKEN),
        # Our own earlier attempt rests under this cl_ord_id: placed after all, resolved by lookup.
        ("EOrder:Duplicate cl_ord_id", P, A, Hint.NONE),
        # Strings no row knows: reads refuse, a write is resolved by lookup; EService means the venue is unwell.
        ("EFoo:Something new", P, A, Hint.NONE),
        ("EService:Something new", R, A, Hint.VENUE_DOWN),
        ("EOrder:Something new", P, P, Hint.NONE),
    ],
)
def test_table_rows(message, read, write, hint):
    assert classify_error(message, write=False) is read
    assert classify_error(message, write=True) is write
    assert rule_for(message).hint is hint


@pytest.mark.parametrize(
    ("message", "exit_write", "entry_write"),
    [
        # Definite for an entry (it is never resized and does not wait for funds or for orders to end); an exit
        # is sent again, resized or after a wait, for the position it protects.
        ("EOrder:Insufficient funds", X, P),
        ("EOrder:Orders limit exceeded", X, P),
        ("EOrder:Scheduled orders limit exceeded", X, P),
        # The same for both: a wait (rate limits, the nonce) or a re-round by the venue's new rules helps either.
        ("EOrder:Rate limit exceeded", X, X),
        ("EAPI:Invalid nonce", X, X),
        ("EOrder:Invalid price:XXBTZUSD price can only be specified up to 1 decimals.", X, X),
        ("EOrder:Order minimum not met", P, P),
        ("EOrder:Cost minimum not met", P, P),
        ("EService:Unavailable", A, A),
    ],
)
def test_an_entry_and_an_exit_refused_alike_are_classified_for_what_they_are(message, exit_write, entry_write):
    assert classify_error(message, write=True) is exit_write
    assert classify_error(message, write=True, entry=True) is entry_write


def test_every_eorder_refusal_an_exit_sends_again_is_either_definite_for_an_entry_or_helped_by_a_wait_or_reround():
    """No EOrder row leaves an entry retried for a refusal that no wait or correction can cure (the break test's
    funds finding, checked for the whole table)."""
    curable = {Correction.REROUND}
    for rule in ERROR_TABLE:
        if not rule.prefix.startswith("EOrder:") or rule.write_class(entry=True) is not X:
            continue
        assert rule.read is L or rule.correction in curable, rule.prefix


def test_longest_prefix_wins():
    assert rule_for("EQuery:Unknown asset pair").prefix == "EQuery:Unknown asset pair"
    assert rule_for("EOrder:Rate limit exceeded").prefix == "EOrder:Rate limit exceeded"


def test_table_has_no_duplicate_prefixes():
    prefixes = [rule.prefix for rule in ERROR_TABLE]
    assert len(prefixes) == len(set(prefixes))


def test_throttled_retry_time_is_parsed():
    assert retry_at("EService:Throttled: 1700000000") == 1700000000.0
    error = KrakenVenueError("OpenOrders", ["EService:Throttled: 1700000005"], write=False)
    assert error.retry_at == 1700000005.0
    assert KrakenVenueError("OpenOrders", ["EAPI:Rate limit exceeded"], write=False).retry_at is None


@pytest.mark.parametrize(
    ("kind", "status", "read", "write"),
    [
        (Transport.CONNECT_FAILED, None, R, R),  # never connected: an AddOrder certainly did not leave
        (Transport.TIMEOUT, None, R, A),
        (Transport.CONNECTION_LOST, None, R, A),
        (Transport.BAD_BODY, None, R, A),  # a Cloudflare HTML page with status 200
        (Transport.HTTP_STATUS, 502, R, A),
        (Transport.HTTP_STATUS, 503, R, A),
        (Transport.HTTP_STATUS, 520, R, A),
        (Transport.HTTP_STATUS, 522, R, A),
        (Transport.HTTP_STATUS, 408, R, A),
        (Transport.HTTP_STATUS, 425, R, A),
        (Transport.HTTP_STATUS, 429, L, A),
        (Transport.HTTP_STATUS, 403, P, P),
        (Transport.HTTP_STATUS, 404, P, P),
    ],
)
def test_transport_failures(kind, status, read, write):
    assert classify_transport(kind, write=False, status=status) is read
    assert classify_transport(kind, write=True, status=status) is write
    assert KrakenTransportError("AddOrder", kind, "x", write=True, status=status).error_class is write


def test_breaker_counts_transport_and_5xx_but_not_client_errors():
    assert trips_breaker(Transport.TIMEOUT)
    assert trips_breaker(Transport.BAD_BODY)
    assert trips_breaker(Transport.HTTP_STATUS, 502)
    assert not trips_breaker(Transport.HTTP_STATUS, 404)
    assert not trips_breaker(Transport.HTTP_STATUS, 429)
