"""The web console over HTTP (no browser): its session and CSRF rules, that it never widens the API's guard, that its
buttons are the API's commands, and that its filters are the API's. Both backends; the browser flows are in
test_console_browser.py."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from execledger.application.ledger import entry_order_id
from execledger.application.service import ServiceConfig
from execledger.domain.order import State
from execledger.infrastructure.api import OPENAPI, ApiContext, create_api
from execledger.infrastructure.api.console.sessions import COOKIE, CSRF_HEADER, ConsoleSessions, safe_next
from execledger.infrastructure.bootstrap import build_trading, open_ledger
from execledger.infrastructure.commandbus import CommandBus
from tests.fakes import FakeExchange

TOKEN = "c" * 40
SIGNAL = {"pair": "XBT/USD", "side": "buy", "order_type": "limit", "quantity": "0.01", "limit_price": "60000"}


@pytest.fixture
async def console(settings, clock):
    """An all-in-one API with a token over a FakeExchange: ``(client, ctx)``."""
    lg = open_ledger(settings, clock=clock)
    trading = build_trading(lg, FakeExchange(clock), ServiceConfig(deadman_enabled=False, tick_interval_s=0.05))
    task = asyncio.create_task(trading.service.run())
    await asyncio.wait_for(trading.service.recovered.wait(), 10)
    ctx = ApiContext(
        ledger=lg, bus=CommandBus(lg, role="test", local_trading=trading.service), service=trading.service, token=TOKEN
    )
    client = TestClient(TestServer(create_api(ctx)))
    await client.start_server()
    yield client, ctx
    await client.close()
    await trading.service.stop()
    await asyncio.wait_for(task, 10)
    lg.close()


BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def until_committed(ctx, predicate, timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, checked after each commit of the trading process (no sleeps)."""
    changed = asyncio.Event()
    ctx.service.engine.uow.add_listener(lambda committed: changed.set())
    while not predicate():
        changed.clear()
        await asyncio.wait_for(changed.wait(), timeout)


def _entry_state(ctx, signal_id: str) -> State | None:
    order = ctx.service.engine.orders.get(entry_order_id(signal_id))
    return None if order is None else order.state


async def login(client) -> tuple[str, str]:
    """Log in with the token: (the session cookie's value, the page's CSRF token)."""
    r = await client.post("/console/login", json={"token": TOKEN, "next": "/console/orders"})
    assert r.status == 200 and (await r.json())["next"] == "/console/orders"
    cookie = r.headers["Set-Cookie"]
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "path", "samesite"} <= attributes, cookie
    assert "SameSite=Strict" in cookie and "Path=/console" in cookie
    session = re.match(rf"{COOKIE}=([^;]+)", cookie).group(1)
    client.session.cookie_jar.clear()  # every request below says which session it carries, if any
    page = await client.get("/console/signals", headers={"Cookie": f"{COOKIE}={session}"}, allow_redirects=False)
    assert page.status == 200
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', await page.text()).group(1)
    return session, csrf


async def test_pages_need_a_session_given_only_for_the_token(console):
    client, _ctx = console
    root = await client.get("/", allow_redirects=False)
    assert root.status == 303 and root.headers["Location"] == "/console/signals"  # DESIGN.md: the console at /
    page = await client.get("/console/signals?status=open", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/console/login?next=/console/signals%3Fstatus%3Dopen"
    assert (await client.get("/console/login")).status == 200
    wrong = await client.post("/console/login", json={"token": "x" * 40})
    assert wrong.status == 401 and "Set-Cookie" not in wrong.headers
    assert (
        await client.get("/console/signals", headers={"Cookie": f"{COOKIE}=forged"}, allow_redirects=False)
    ).status == 303
    session, _csrf = await login(client)
    page = await client.get("/console/signals", headers={"Cookie": f"{COOKIE}={session}"})
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    out = await client.post("/console/logout", json={}, headers={"Cookie": f"{COOKIE}={session}", CSRF_HEADER: _csrf})
    assert out.status == 200
    gone = await client.get("/console/signals", headers={"Cookie": f"{COOKIE}={session}"}, allow_redirects=False)
    assert gone.status == 303


async def test_the_console_session_opens_no_v1_route(console):
    client, _ctx = console
    session, csrf = await login(client)
    jar = {"Cookie": f"{COOKIE}={session}", CSRF_HEADER: csrf}
    assert (await client.get("/v1/orders", headers=jar)).status == 401
    assert (await client.post("/v1/trading/halt", json={"reason": "x"}, headers=jar)).status == 401
    assert (await client.post("/v1/signals", json={**SIGNAL, "signal_id": "c-0"}, headers=jar)).status == 401
    assert (await client.get("/v1/orders", headers=BEARER)).status == 200
    assert not [p for p in OPENAPI["paths"] if p.startswith("/console")]  # HTML and session routes: undocumented


async def test_a_console_post_needs_the_session_and_its_csrf_token(console):
    client, ctx = console
    session, csrf = await login(client)
    halt = "/console/act/trading/halt"
    body = {"reason": "csrf probe", "by": "console"}
    assert (await client.post(halt, json=body)).status == 401  # no session
    cookie = {"Cookie": f"{COOKIE}={session}"}
    assert (await client.post(halt, json=body, headers=cookie)).status == 403  # no CSRF token
    assert (await client.post(halt, json=body, headers={**cookie, CSRF_HEADER: "x" * len(csrf)})).status == 403
    _other, other_csrf = await login(client)
    assert (await client.post(halt, json=body, headers={**cookie, CSRF_HEADER: other_csrf})).status == 403
    cross = {**cookie, CSRF_HEADER: csrf, "Origin": "http://evil.example"}
    assert (await client.post(halt, json=body, headers=cross)).status == 403  # the guard's Origin rule still holds
    form = await client.post(halt, data="reason=x", headers={**cookie, CSRF_HEADER: csrf, "Content-Type": "text/plain"})
    assert form.status == 415  # and its JSON-only rule
    assert ctx.trading_state().mode.value == "running"  # nothing above was carried out

    done = await client.post(halt, json=body, headers={**cookie, CSRF_HEADER: csrf})
    receipt = await done.json()
    assert done.status == 200, receipt
    assert receipt["command"] == "halt" and receipt["outcome"] == "applied"
    state = ctx.trading_state()
    assert (state.mode.value, state.by, state.why) == ("halted", "console", "csrf probe")
    refused = await client.post("/v1/signals", json={**SIGNAL, "signal_id": "c-1"}, headers=BEARER)
    assert refused.status == 423
    # resume through the console: the same handler as POST /v1/trading/resume, its 422 for an unknown field included
    bad = await client.post(
        "/console/act/trading/resume",
        json={"reason": "r", "cancel_entries": True},
        headers={**cookie, CSRF_HEADER: csrf},
    )
    assert bad.status == 422 and (await bad.json())["errors"][0]["field"] == "cancel_entries"
    ok = await client.post("/console/act/trading/resume", json={"reason": "r"}, headers={**cookie, CSRF_HEADER: csrf})
    assert ok.status == 200 and ctx.trading_state().mode.value == "running"


async def test_cancel_and_close_from_the_console_are_the_api_commands(console):
    client, ctx = console
    session, csrf = await login(client)
    jar = {"Cookie": f"{COOKIE}={session}", CSRF_HEADER: csrf}
    placed = await (await client.post("/v1/signals", json={**SIGNAL, "signal_id": "c-2"}, headers=BEARER)).json()
    missing = await client.post("/console/act/orders/nope/cancel", json={"reason": "r"}, headers=jar)
    assert missing.status == 404  # the API's answer for an unknown order
    r = await client.post(
        f"/console/act/orders/{placed['order_id']}/cancel", json={"reason": "too far", "by": "console"}, headers=jar
    )
    body = await r.json()
    assert r.status == 200 and body["command"] == "cancel_order" and body["outcome"] == "applied", body
    order = ctx.ledger.ledger.order_history(placed["order_id"])
    cancel = next(h for h in order if h.name == "CancelRequested")
    assert "too far" in str(cancel.reason) and "console" in str(cancel.reason)
    closed = await client.post("/console/act/signals/c-2/close", json={"reason": "flat"}, headers=jar)
    assert closed.status in (200, 409), await closed.text()
    assert (await closed.json())["command"] == "close_position"


async def test_filters_are_the_apis_and_a_bad_one_is_named_on_the_page(console):
    client, ctx = console
    session, _csrf = await login(client)
    cookie = {"Cookie": f"{COOKIE}={session}"}
    for sid in ("alpha-1", "beta-2"):
        assert (await client.post("/v1/signals", json={**SIGNAL, "signal_id": sid}, headers=BEARER)).status == 201
    # The status filter below needs both entries acknowledged by the venue (201 means accepted, not yet resting),
    # and those acknowledgements committed: one alone waits for the next commit (deferred), while the order in
    # memory already shows it, so the read models would not see it yet.
    await until_committed(
        ctx,
        lambda: (
            all(_entry_state(ctx, sid) is State.OPEN for sid in ("alpha-1", "beta-2"))
            and not ctx.service.engine.uow.has_deferred
        ),
    )
    ctx.projector.catch_up()
    page = await (await client.get("/console/orders?role=entry&text=ALPHA", headers=cookie)).text()
    assert 'href="/console/signals/alpha-1"' in page and "beta-2" not in page
    page = await (await client.get("/console/orders?role=stop_loss", headers=cookie)).text()
    assert "no order matches" in page
    api = await (await client.get("/v1/orders", params={"text": "pha-", "role": "entry"}, headers=BEARER)).json()
    assert [o["signal_id"] for o in api["items"]] == ["alpha-1"]
    literal = await (await client.get("/v1/orders", params={"text": "%"}, headers=BEARER)).json()
    assert literal["total"] == 0  # LIKE wildcards are text
    signals = await (await client.get("/console/signals?text=beta&status=open", headers=cookie)).text()
    assert "/console/signals/beta-2" in signals and "/console/signals/alpha-1" not in signals
    bad = await client.get("/console/orders?pair=NOPE&role=boss", headers=cookie)
    text = await bad.text()
    assert bad.status == 400 and "<b>role</b>" in text and "no order matches" in text  # named; nothing unfiltered
    assert "<b>pair</b>" in await (await client.get("/console/signals?pair=NOPE", headers=cookie)).text()
    assert (await client.get("/v1/orders", params={"role": "boss"}, headers=BEARER)).status == 400


async def test_the_signal_page_finds_a_signal_by_any_id_and_escapes_what_it_shows(console):
    client, ctx = console
    session, _csrf = await login(client)
    cookie = {"Cookie": f"{COOKIE}={session}"}
    placed = await (await client.post("/v1/signals", json={**SIGNAL, "signal_id": "x-1"}, headers=BEARER)).json()
    ctx.projector.catch_up()
    for ident in ("x-1", placed["order_id"], placed["cl_ord_id"]):
        page = await client.get(f"/console/signals/{ident}", headers=cookie)
        text = await page.text()
        assert page.status == 200, ident
        assert 'id="timeline"' in text and 'data-event="Placed"' in text and "[approved_signal]" in text
    missing = await client.get("/console/signals/nope", headers=cookie)
    assert missing.status == 404 and 'id="missing"' in await missing.text()
    hostile = '"><script>alert(1)</script>'
    for path in (f"/console/orders?text={quote(hostile)}", f"/console/signals/{quote(hostile, safe='')}"):
        text = await (await client.get(path, headers=cookie)).text()
        assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text, path


def test_sessions_expire_and_are_bounded_and_login_goes_only_to_the_console():
    now = [0.0]
    sessions = ConsoleSessions(ttl_s=10, limit=2, clock=lambda: now[0])
    first = sessions.create()
    assert sessions.get(first.id) == first and first.csrf != first.id
    now[0] = 10.0
    assert sessions.get(first.id) is None
    a, b, c = sessions.create(), sessions.create(), sessions.create()
    assert sessions.get(a.id) is None and sessions.get(b.id) == b and sessions.get(c.id) == c
    assert safe_next("/console/orders?x=1") == "/console/orders?x=1"
    for hostile in ("//evil.example/console", "https://evil.example", "/v1/orders", "/console\\@evil", None):
        assert safe_next(hostile) == "/console/signals"


async def test_a_poll_of_an_unchanged_page_is_answered_without_running_its_queries(console):
    client, ctx = console
    session, _csrf = await login(client)
    cookie = {"Cookie": f"{COOKIE}={session}"}
    for path in ("/console/signals", "/console/orders?role=entry"):
        page = await client.get(path, headers=cookie)
        version = re.search(r'data-version="([0-9a-f]+)"', await page.text()).group(1)
        again = await client.get(path, headers={**cookie, "X-Console-Version": version})
        assert again.status == 204, path
        other = await client.get(path, headers={**cookie, "X-Console-Version": "stale"})
        assert other.status == 200, path
    page = await client.get("/console/signals", headers=cookie)
    version = re.search(r'data-version="([0-9a-f]+)"', await page.text()).group(1)
    assert (await client.post("/v1/signals", json={**SIGNAL, "signal_id": "v-1"}, headers=BEARER)).status == 201
    ctx.projector.catch_up()  # the read models moved: the page is new
    fresh = await client.get("/console/signals", headers={**cookie, "X-Console-Version": version})
    assert fresh.status == 200 and "/console/signals/v-1" in await fresh.text()
    halted = await client.post("/v1/trading/halt", json={"reason": "v"}, headers=BEARER)
    assert halted.status == 200
    version = re.search(r'data-version="([0-9a-f]+)"', await fresh.text()).group(1)
    after = await client.get("/console/signals", headers={**cookie, "X-Console-Version": version})
    assert after.status == 200 and 'id="mode" class="badge mode-halted"' in await after.text()  # so did the mode
