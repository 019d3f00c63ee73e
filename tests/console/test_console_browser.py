"""The web console in a real headless Chromium against a real ``execledger run`` process and a simulator process.

The operator logs in with the token, a signal comes in through the typed client, the console shows it working
and then filled without a reload when the venue's price crosses its limit; its page shows the audit timeline with
every decision's reason and the fills on the chart; a screenshot's layout is compared with the recorded one
(element boxes, not pixels); halting from the console makes the API refuse a new entry (423). Both backends.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
from pathlib import Path

import pytest

from execledger.infrastructure.client import ApiError, ExecledgerClient
from tests.processes import Deployment

TOKEN = "w" * 40
VIEWPORT = {"width": 1280, "height": 860}
LAYOUT = Path(__file__).with_name("layout.json")
# The signal page's key elements; their horizontal boxes are compared with LAYOUT, their vertical order checked.
KEY_ELEMENTS = (
    "#top",
    "#nav",
    "#mode",
    "#operator",
    "#summary",
    "#chart-box",
    "#legs-box",
    "#timeline-box",
    "#close-form",
)
TOLERANCE_PX = 12
RECORD = os.environ.get("EXECLEDGER_RECORD_LAYOUT") == "1"  # read at import: the settings fixture clears EXECLEDGER_*


def signal(signal_id: str) -> dict:
    return {
        "signal_id": signal_id,
        "pair": "XBT/USD",
        "side": "buy",
        "order_type": "limit",
        "quantity": "0.01",
        "limit_price": "50000",
        "sl_price": "45000",
        "tp_price": "60000",
    }


async def boxes(page) -> dict[str, dict[str, float]]:
    """Every key element's box in one pass over the page (page coordinates)."""
    found = await page.evaluate(
        """selectors => Object.fromEntries(selectors.map(s => {
            const e = document.querySelector(s);
            if (!e) return [s, null];
            const r = e.getBoundingClientRect();
            return [s, {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}];
        }))""",
        list(KEY_ELEMENTS),
    )
    for selector, box in found.items():
        assert box is not None and box["width"] > 0 and box["height"] > 0, f"{selector} is not displayed"
    return {s: {k: round(v, 1) for k, v in box.items()} for s, box in found.items()}


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def assert_layout(found: dict[str, dict[str, float]], page_width: float, compare: bool = True) -> None:
    """Structure first (whatever the content): the header spans the top, the chart sits left of the legs, the
    timeline below both, nothing overlaps, nothing runs off the page. Then each box against the recorded layout."""
    top = found["#top"]
    assert top["x"] == 0 and top["y"] == 0 and abs(top["width"] - page_width) <= 1
    chart, legs = found["#chart-box"], found["#legs-box"]
    assert chart["x"] + chart["width"] <= legs["x"], "the chart must be left of the legs table"
    assert abs(chart["y"] - legs["y"]) <= TOLERANCE_PX, "the chart and the legs start on one row"
    order = ["#top", "#summary", "#chart-box", "#timeline-box", "#close-form"]
    for upper, lower in itertools.pairwise(order):
        assert found[upper]["y"] + found[upper]["height"] <= found[lower]["y"] + 1, f"{upper} must be above {lower}"
    for name, box in found.items():
        assert box["x"] >= 0 and box["x"] + box["width"] <= page_width + 1, f"{name} runs off the page: {box}"
    if not compare:
        return
    if RECORD:  # after a deliberate layout change: EXECLEDGER_RECORD_LAYOUT=1 pytest tests/console, then review
        LAYOUT.write_text(json.dumps({k: {"x": v["x"], "width": v["width"]} for k, v in found.items()}, indent=1))
    recorded = json.loads(LAYOUT.read_text())
    assert set(recorded) == set(KEY_ELEMENTS)
    for name, want in recorded.items():
        got = found[name]
        for key in ("x", "width"):
            assert abs(got[key] - want[key]) <= TOLERANCE_PX, f"{name}.{key}: {got[key]} vs recorded {want[key]}"


async def test_the_operator_watches_a_signal_fill_reads_its_timeline_and_halts(settings, tmp_path, browser):
    async with Deployment(tmp_path, settings) as d:
        service, api = await d.service("service", EXECLEDGER_API_TOKEN=TOKEN)
        context = await browser.new_context(viewport=VIEWPORT)
        page = await context.new_page()
        problems: list[str] = []  # script errors and CSP refusals surface here
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "console", lambda msg: problems.append(f"{msg.text} {msg.location['url']}") if msg.type == "error" else None
        )
        page.on(
            "response", lambda r: problems.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None
        )
        from playwright.async_api import expect

        # Log in: the token is asked for once, then an HttpOnly SameSite=Strict cookie stands for it.
        await page.goto(f"{api}/console/signals")
        assert "/console/login" in page.url
        await page.fill("#token", "not-the-token")
        await page.click("#login button[type=submit]")
        await expect(page.locator("#login-error")).to_contain_text("wrong token")
        await page.fill("#token", TOKEN)
        await page.click("#login button[type=submit]")
        await page.wait_for_url("**/console/signals")
        await expect(page.locator("#signals")).to_be_visible()
        [cookie] = await context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
        assert TOKEN not in await page.content()
        assert await page.evaluate("document.cookie") == ""  # no script can read the session

        await page.evaluate("window.notReloaded = true")
        async with ExecledgerClient(api, token=TOKEN, session=d.http) as client:
            placed = await client.submit_signal(signal("web-1"))
            row = page.locator('tr[data-signal="web-1"]')
            await expect(row.locator("td.entry-status")).to_have_text("open", timeout=20_000)  # appeared by itself
            await d.post(f"{d.sim_url}/_sim/price", {"pair": "XBT/USD", "price": "49990"})  # through the limit
            await expect(row.locator("td.entry-status")).to_have_text("filled", timeout=30_000)
            await expect(row.locator("td.state")).to_have_text("open")  # a position is held
            assert await page.evaluate("window.notReloaded") is True, "the list must update in place"

            # Filters: the same as the API's.
            await page.fill("#filters input[name=text]", "no-such-signal")
            await page.click("#filters button[type=submit]")
            await expect(page.locator("#signals tr.empty")).to_have_count(1)
            await page.goto(f"{api}/console/orders?role=entry&text=web-1")
            await expect(page.locator(f'tr[data-order="{placed["order_id"]}"] td.order-status')).to_have_text("filled")

            # The signal's page: entry, legs, PnL, the timeline with every decision's reason, fills on the chart.
            await page.goto(f"{api}/console/signals")
            await page.click('tr[data-signal="web-1"] a.signal-link')
            await page.wait_for_url("**/console/signals/web-1")
            await expect(page.locator("#entry-status")).to_have_text("filled")
            await expect(page.locator('#legs tr[data-role="stop_loss"] td.order-status')).to_have_text(
                "open", timeout=20_000
            )
            await expect(page.locator("#position")).to_have_text("0.01")
            await expect(page.locator("#unrealised")).to_contain_text("USD")
            timeline = page.locator("#timeline tbody tr")
            events = await timeline.evaluate_all("rows => rows.map(r => r.dataset.event)")
            assert {"Placed", "Submitted", "Acknowledged", "Filled", "BracketPlaced"} <= set(events), events
            for decision in await page.locator("#timeline tr.kind-decision td.details").all_inner_texts():
                assert decision.startswith("["), f"a decision without its reason: {decision!r}"
            placed_reason = page.locator('#timeline tr[data-event="Placed"] td.details').first
            await expect(placed_reason).to_contain_text("[approved_signal] approved signal web-1")
            await expect(page.locator("#fill-chart circle.fill.entry")).to_have_count(1)
            assert (
                await page.locator("#fill-chart circle.fill.entry").get_attribute("data-price") == "50000"
            )  # at its limit
            await expect(page.locator("#fill-chart line.level.stop_loss")).to_have_count(1)

            # Layout: a screenshot of the page, its key elements' boxes compared with the recorded layout.
            await page.uncheck("#live-toggle")  # the operator pauses live updates: the page holds still
            png = await page.screenshot(path=str(tmp_path / "signal.png"))
            assert png_size(png) == (VIEWPORT["width"], VIEWPORT["height"])
            width = await page.evaluate("document.documentElement.clientWidth")
            assert await page.evaluate("document.documentElement.scrollWidth") <= width, "horizontal scroll"
            assert_layout(await boxes(page), width)
            await page.set_viewport_size({"width": 1024, "height": 768})  # a smaller screen: the same structure
            assert await page.evaluate("document.documentElement.scrollWidth") <= 1024, "horizontal scroll at 1024"
            assert_layout(await boxes(page), 1024, compare=False)
            await page.set_viewport_size(VIEWPORT)

            # Halt from the console: the API then refuses a new entry.
            await page.check("#live-toggle")
            await page.fill("#operator input[name=reason]", "browser halt")
            await page.click("#halt")
            await expect(page.locator("#flash")).to_contain_text("halt applied by")
            await expect(page.locator("#mode")).to_have_text("halted")
            await expect(page.locator("#mode-why")).to_contain_text("by console: browser halt")
            with pytest.raises(ApiError) as refused:
                await client.submit_signal(signal("web-2"))
            assert refused.value.status == 423
            health = await client.health()
            assert (health["trading"]["mode"], health["trading"]["by"]) == ("halted", "console")
            # A refused command is shown as refused, with the API's reason.
            await page.click("#resume")  # no reason: the browser itself asks for one, nothing is sent
            await expect(page.locator("#mode")).to_have_text("halted")
            await page.fill("#operator input[name=reason]", "done")
            await page.click("#resume")
            await expect(page.locator("#mode")).to_have_text("running")
        wrong_login = [p for p in problems if "/console/login" in p and "401" in p]  # the one refused on purpose
        assert len(wrong_login) == 2 and [p for p in problems if p not in wrong_login] == [], problems
        assert service.alive
        await context.close()
