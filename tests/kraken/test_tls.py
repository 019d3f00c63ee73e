"""TLS failures are configuration errors (issue 14, item 6): a certificate that does not verify, or a server that
does not speak TLS, is PERMANENT (never retried, never an outage for the breaker), and the start-up check names
EXECLEDGER_KRAKEN_URL. Real TLS servers on loopback, with a throwaway CA (trustme) the client does not trust."""

import asyncio
import socket
import ssl

import pytest
import trustme
from aiohttp import web
from pydantic import SecretStr

from execledger.application.ports import ErrorClass
from execledger.infrastructure.kraken.adapter import KrakenExchange
from execledger.infrastructure.kraken.breaker import CircuitBreaker
from execledger.infrastructure.kraken.credentials import KrakenCredentials
from execledger.infrastructure.kraken.errors import KrakenTransportError, Transport, classify_transport, trips_breaker
from execledger.infrastructure.kraken.nonce import PersistentNonce
from execledger.infrastructure.kraken.rest import KrakenRestClient
from execledger.infrastructure.kraken.retry import RetryPolicy
from execledger.infrastructure.preflight import ConfigError, check_online
from execledger.infrastructure.settings import Settings

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="


@pytest.fixture
async def untrusted_https():
    """An HTTPS server on 127.0.0.1 whose certificate is signed by a CA nobody trusts; counts the requests."""
    cert = trustme.CA().issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    hits = []

    async def anything(request):
        hits.append(request.path)
        return web.json_response({"error": [], "result": {}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", hits
    await runner.cleanup()


@pytest.fixture
async def plain_http():
    """A plain-http server: what an https:// URL pointed at the wrong port meets."""
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    await runner.cleanup()


def test_tls_failure_is_permanent_for_reads_and_writes_and_not_an_outage():
    assert classify_transport(Transport.TLS_FAILED, write=False) is ErrorClass.PERMANENT
    assert classify_transport(Transport.TLS_FAILED, write=True) is ErrorClass.PERMANENT  # nothing was sent
    assert not trips_breaker(Transport.TLS_FAILED)


def client(url, tmp_path, **kw):
    credentials = KrakenCredentials(key="k", secret=SecretStr(SECRET))
    return KrakenRestClient(url, credentials, nonce=PersistentNonce(tmp_path / "nonce"), **kw)


async def test_an_untrusted_certificate_is_not_retried_and_never_reaches_the_server(untrusted_https, tmp_path):
    url, hits = untrusted_https
    breaker = CircuitBreaker()
    rest = client(url, tmp_path, breaker=breaker)
    retry = RetryPolicy(attempts=5, sleep=lambda s: asyncio.sleep(0))
    exchange = KrakenExchange(rest, retry=retry)
    try:
        with pytest.raises(KrakenTransportError) as info:
            await exchange.open_orders()
    finally:
        await exchange.close()
    assert info.value.kind is Transport.TLS_FAILED and info.value.error_class is ErrorClass.PERMANENT
    assert "certificate" in info.value.description
    assert retry.waits == [] and hits == []  # one handshake, no retry, no request delivered
    assert str(breaker.state) == str(CircuitBreaker().state)


async def test_https_to_a_server_that_does_not_speak_tls_is_a_tls_failure(plain_http, tmp_path):
    async with client(plain_http, tmp_path) as rest:
        with pytest.raises(KrakenTransportError) as info:
            await rest.private("Balance")
    assert info.value.kind is Transport.TLS_FAILED


async def test_the_start_up_check_names_the_url_for_a_tls_failure(untrusted_https, tmp_path):
    url, _hits = untrusted_https
    settings = Settings(
        data_dir=tmp_path, kraken_url=url, kraken_ws_url="wss://127.0.0.1:1/v2", kraken_key="k", kraken_secret=SECRET
    )
    for strict in (True, False):  # an outage may be started through; a TLS failure never
        with pytest.raises(ConfigError, match=r"^EXECLEDGER_KRAKEN_URL: TLS handshake with .* failed"):
            await check_online(settings, strict=strict)


async def test_the_start_up_check_rides_out_an_outage_unless_strict(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    settings = Settings(data_dir=tmp_path, kraken_url=f"http://127.0.0.1:{port}", kraken_key="k", kraken_secret=SECRET)
    warning = await check_online(settings, strict=False)
    assert warning is not None and warning.startswith("EXECLEDGER_KRAKEN_URL: ")
    with pytest.raises(ConfigError, match=r"^EXECLEDGER_KRAKEN_URL: Kraken did not answer"):
        await check_online(settings, strict=True)
