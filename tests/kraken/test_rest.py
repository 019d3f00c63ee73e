"""KrakenRestClient against a stub Kraken on 127.0.0.1: signing, nonce, URL policy, transport failures."""

import asyncio

import pytest

from execledger.application.ports import ErrorClass
from execledger.infrastructure.kraken.breaker import BreakerState, CallKind
from execledger.infrastructure.kraken.credentials import CredentialsError
from execledger.infrastructure.kraken.errors import BreakerOpen, KrakenTransportError, KrakenVenueError, Transport
from execledger.infrastructure.kraken.ratelimit import RestCallLimiter, Tier
from execledger.infrastructure.kraken.rest import USER_AGENT, KrakenRestClient, check_base_url
from tests.conftest import kraken_fixture
from tests.kraken.conftest import KEY, Drop, Hang, Http


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.kraken.com", "https://api.kraken.com"),
        ("https://api.kraken.com/", "https://api.kraken.com"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://localhost:8765", "http://localhost:8765"),
        ("http://[::1]:8765", "http://[::1]:8765"),
    ],
)
def test_accepted_base_urls(url, origin):
    assert check_base_url(url) == origin


@pytest.mark.parametrize(
    "url",
    ["http://api.kraken.com", "http://10.0.0.5:8765", "ftp://127.0.0.1", "https://api.kraken.com/0", "api.kraken.com"],
)
def test_refused_base_urls(url):
    with pytest.raises(ValueError):
        KrakenRestClient(url)


async def test_private_call_is_signed_form_encoded_with_user_agent(stub, rest):
    stub.on("Balance", {"error": [], "result": {"ZUSD": "100.0"}})
    assert await rest.private("Balance") == {"ZUSD": "100.0"}
    (call,) = stub.calls("Balance")  # the stub verified API-Sign with auth.verify before recording it
    assert call.headers["API-Key"] == KEY
    assert call.headers["User-Agent"] == USER_AGENT
    assert call.body.startswith("nonce=")


async def test_nonces_strictly_increase_and_survive_a_new_client(stub, rest, credentials, tmp_path):
    stub.on("OpenOrders", {"error": [], "result": {"open": {}}})
    for _ in range(3):
        await rest.private("OpenOrders")
    async with KrakenRestClient(stub.url, credentials, data_dir=tmp_path) as again:  # a "restart"
        await again.private("OpenOrders")
    nonces = [int(c.params["nonce"]) for c in stub.calls("OpenOrders")]
    assert nonces == sorted(nonces) and len(set(nonces)) == 4


async def test_public_call(stub, rest):
    stub.on("Time", kraken_fixture("rest_time_official_example.json"))
    assert (await rest.public("Time"))["unixtime"] == 1688669448


async def test_invalid_nonce_gets_one_fresh_nonce_retry_for_reads(stub, rest):
    stub.on(
        "OpenOrders",
        kraken_fixture("rest_error_invalid_nonce_ccxt_issue_253.json"),
        {"error": [], "result": {"open": {}}},
    )
    assert await rest.private("OpenOrders") == {"open": {}}
    first, second = stub.calls("OpenOrders")
    assert int(second.params["nonce"]) > int(first.params["nonce"])


async def test_invalid_nonce_twice_is_final(stub, rest):
    stub.on("OpenOrders", kraken_fixture("rest_error_invalid_nonce_ccxt_issue_253.json"))
    with pytest.raises(KrakenVenueError):
        await rest.private("OpenOrders")
    assert len(stub.calls("OpenOrders")) == 2


async def test_invalid_nonce_on_add_order_is_not_resent_here(stub, rest):
    """The client never resends AddOrder; the refusal says nothing executed, so the engine may send it again later
    (with a fresh nonce), deliberately and recorded."""
    stub.on("AddOrder", kraken_fixture("rest_error_invalid_nonce_ccxt_issue_253.json"))
    with pytest.raises(KrakenVenueError) as info:
        await rest.private("AddOrder", {"pair": "XBTUSD"}, kind=CallKind.NEW_ENTRY)
    assert info.value.error_class is ErrorClass.NOT_EXECUTED
    assert len(stub.calls("AddOrder")) == 1


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (Http(502), Transport.HTTP_STATUS),
        (Http(520, "<html>Cloudflare: web server is returning an unknown error</html>"), Transport.HTTP_STATUS),
        (Http(200, "<html>Attention required | Cloudflare</html>"), Transport.BAD_BODY),
        (Http(200, '{"result": {}}', "application/json"), Transport.BAD_BODY),
        (Drop(), Transport.CONNECTION_LOST),
        (Hang(), Transport.TIMEOUT),
    ],
)
async def test_transport_failures_are_classified_read_vs_write(stub, rest, answer, kind):
    stub.on("OpenOrders", answer)
    stub.on("AddOrder", answer)
    with pytest.raises(KrakenTransportError) as read:
        await rest.private("OpenOrders")
    assert read.value.kind is kind and read.value.error_class is ErrorClass.RETRYABLE
    with pytest.raises(KrakenTransportError) as write:
        await rest.private("AddOrder", {"pair": "XBTUSD"}, kind=CallKind.NEW_ENTRY)
    assert write.value.kind is kind and write.value.error_class is ErrorClass.AMBIGUOUS


async def test_connection_refused_is_connect_failed(credentials, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with KrakenRestClient(f"http://127.0.0.1:{port}", credentials, data_dir=tmp_path) as client:
        with pytest.raises(KrakenTransportError) as info:
            await client.private("AddOrder", {}, kind=CallKind.NEW_ENTRY)
    assert info.value.kind is Transport.CONNECT_FAILED and info.value.error_class is ErrorClass.RETRYABLE


async def test_breaker_opens_on_5xx_and_then_refuses_without_sending(stub, rest, breaker, fake_time):
    stub.on("OpenOrders", Http(502))
    stub.on("CancelOrder", {"error": [], "result": {"count": 1}})
    for _ in range(3):
        with pytest.raises(KrakenTransportError):
            await rest.private("OpenOrders")
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(BreakerOpen):
        await rest.private("OpenOrders")
    with pytest.raises(BreakerOpen):
        await rest.private("AddOrder", {}, kind=CallKind.NEW_ENTRY)
    assert len(stub.calls("OpenOrders")) == 3 and not stub.calls("AddOrder")
    assert await rest.private("CancelOrder", {"txid": "O1"}, kind=CallKind.CANCEL) == {"count": 1}


async def test_venue_errors_count_as_the_venue_being_up_except_unavailable(stub, rest, breaker):
    stub.on("OpenOrders", {"error": ["EService:Unavailable"]})
    for _ in range(3):
        with pytest.raises(KrakenVenueError):
            await rest.private("OpenOrders")
    assert breaker.state is BreakerState.OPEN


async def test_rest_rate_limit_answer_resyncs_the_counter(stub, credentials, tmp_path, fake_time):
    limiter = RestCallLimiter(Tier.STARTER, clock=fake_time.monotonic, sleep=fake_time.sleep)
    stub.on("OpenOrders", {"error": ["EAPI:Rate limit exceeded"]})
    async with KrakenRestClient(stub.url, credentials, data_dir=tmp_path, limiter=limiter) as client:
        with pytest.raises(KrakenVenueError) as info:
            await client.private("OpenOrders")
    assert info.value.error_class is ErrorClass.RATE_LIMITED
    assert limiter.counter.level == 15


async def test_warnings_are_not_errors(stub, rest):
    stub.on("OpenOrders", {"error": ["WGeneral:Something deprecated"], "result": {"open": {}}})
    assert await rest.private("OpenOrders") == {"open": {}}


async def test_validate_credentials(stub, rest):
    stub.on("Balance", kraken_fixture("rest_error_invalid_key_docs.json"))
    with pytest.raises(CredentialsError, match="refused the API credentials"):
        await rest.validate_credentials()
    stub.scripts["Balance"] = [{"error": [], "result": {}}]
    await rest.validate_credentials()


async def test_a_nonce_refused_twice_at_the_credentials_check_is_not_a_bad_key(stub, rest):
    """Found by the fault suite: another client's nonce 3 s ahead at a restart made the start-up check refuse the
    key (exit 3); the key is fine, the venue refused the call, which the start rides out like an outage."""
    stub.scripts["Balance"] = [{"error": ["EAPI:Invalid nonce"]}, {"error": ["EAPI:Invalid nonce"]}]
    with pytest.raises(KrakenVenueError) as refused:
        await rest.validate_credentials()
    assert not isinstance(refused.value, CredentialsError)


async def test_private_call_without_credentials_is_a_clear_error(stub):
    async with KrakenRestClient(stub.url) as client:
        with pytest.raises(CredentialsError):
            await client.private("Balance")


async def test_concurrent_signed_calls_arrive_in_nonce_order(stub, rest):
    """Kraken refuses a nonce lower than one it already accepted: concurrent calls must not overtake each other."""
    import asyncio

    stub.on("OpenOrders", {"error": [], "result": {"open": {}}})
    await asyncio.gather(*(rest.private("OpenOrders") for _ in range(10)))
    arrived = [int(c.params["nonce"]) for c in stub.calls("OpenOrders")]
    assert len(arrived) == 10 and arrived == sorted(arrived) and len(set(arrived)) == 10


async def test_a_concurrent_burst_is_counted_when_sent_so_kraken_never_sees_the_counter_over(
    stub, credentials, tmp_path, fake_time
):
    """Kraken counts a call when it arrives. Capacity taken before waiting for the signing lock would be counted
    too early (other calls' waits pass meanwhile), so the venue's counter could pass its maximum."""
    arrivals = []
    stub.on("OpenOrders", lambda params: arrivals.append(fake_time.now) or {"error": [], "result": {"open": {}}})
    limiter = RestCallLimiter(Tier.STARTER, clock=fake_time.monotonic, sleep=fake_time.sleep)
    async with KrakenRestClient(stub.url, credentials, data_dir=tmp_path, limiter=limiter) as client:
        await asyncio.gather(*(client.private("OpenOrders") for _ in range(40)))
    level, at = 0.0, arrivals[0]
    for arrival in arrivals:  # Kraken's counter for the starter tier: +1 per call, -0.33 per second
        level = max(0.0, level - (arrival - at) * 0.33) + 1
        at = arrival
        assert level <= 15 + 1e-9


async def test_a_throttled_burst_of_reads_does_not_hold_up_a_cancel(stub, credentials, tmp_path, fake_time):
    """Reads waiting for REST capacity wait outside the signing lock: a cancel (no REST cost) goes out first."""
    stub.on("OpenOrders", {"error": [], "result": {"open": {}}})
    stub.on("CancelOrder", {"error": [], "result": {"count": 1}})
    limiter = RestCallLimiter(Tier.STARTER, clock=fake_time.monotonic, sleep=fake_time.sleep)
    async with KrakenRestClient(stub.url, credentials, data_dir=tmp_path, limiter=limiter) as client:
        await asyncio.gather(
            *(client.private("OpenOrders") for _ in range(20)),
            client.private("CancelOrder", {"txid": "OAAAAA-BBBBB-CCCCCC"}, kind=CallKind.CANCEL),
        )
    order = [r.method for r in stub.requests]
    assert order.count("OpenOrders") == 20 and order.index("CancelOrder") < 19


async def test_the_signing_turn_goes_to_urgent_callers_first_and_past_a_canceled_one():
    """``SigningTurn``: urgent (a protective leg's AddOrder) before every other waiter, FIFO within each kind; a
    caller canceled while it waits, or just after its turn was handed to it, never keeps the turn."""
    from execledger.infrastructure.kraken.rest import SigningTurn

    turn, order = SigningTurn(), []

    async def call(name: str, urgent: bool = False) -> None:
        await turn.acquire(urgent=urgent)
        order.append(name)
        await asyncio.sleep(0)
        turn.release()

    await turn.acquire()  # held: everything below waits
    tasks = [asyncio.ensure_future(call(n)) for n in ("entry-1", "entry-2")]
    tasks.append(asyncio.ensure_future(call("leg", urgent=True)))
    gone = asyncio.ensure_future(call("canceled", urgent=True))
    await asyncio.sleep(0)
    assert (turn.waiting(), turn.waiting(urgent=True)) == (2, 2)
    gone.cancel()
    turn.release()
    await asyncio.gather(*tasks)
    assert order == ["leg", "entry-1", "entry-2"]
    assert not turn.locked() and gone.cancelled()

    await turn.acquire()
    handed = asyncio.ensure_future(call("handed-then-canceled"))
    after = asyncio.ensure_future(call("after"))
    await asyncio.sleep(0)
    turn.release()  # the turn is handed to the first waiter...
    handed.cancel()  # ...canceled before it runs: it passes the turn on
    await after
    assert order[-1] == "after" and not turn.locked()


async def test_a_reply_the_venue_holds_delays_no_other_signed_call(stub, rest):
    """The signing turn passes on once the request's body is with the transport, not when its reply comes: while
    Kraken holds one AddOrder's reply, a cancel is signed, sent and answered."""
    stub.on("AddOrder", Hang())
    stub.on("CancelOrder", {"error": [], "result": {"count": 1}})
    held = asyncio.ensure_future(rest.private("AddOrder", {"pair": "XBT/USD"}, kind=CallKind.NEW_ENTRY))
    while not stub.calls("AddOrder"):  # the stub has read the held request
        await asyncio.sleep(0.005)
    assert not rest._signed.locked()
    answer = await asyncio.wait_for(
        rest.private("CancelOrder", {"txid": "OAAAAA-BBBBB-CCCCCC"}, kind=CallKind.CANCEL), timeout=0.5
    )
    assert answer == {"count": 1} and not held.done()
    (sent,) = stub.calls("AddOrder")
    (cancel,) = stub.calls("CancelOrder")
    assert int(cancel.params["nonce"]) > int(sent.params["nonce"])
    with pytest.raises(KrakenTransportError):  # the client's timeout (1 s) ends the held call
        await held
    assert not rest._signed.locked()


async def test_a_call_that_never_reaches_the_wire_passes_the_signing_turn_on(credentials, tmp_path):
    """No connection (nothing listens): the turn is passed on when the call fails, and the next call gets it."""
    async with KrakenRestClient("http://127.0.0.1:9", credentials, data_dir=tmp_path, timeout_s=1.0) as client:
        for _ in range(2):
            with pytest.raises(KrakenTransportError) as failed:
                await client.private("Balance")
            assert failed.value.kind is Transport.CONNECT_FAILED and not client._signed.locked()
