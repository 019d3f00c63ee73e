"""Make docs/console.png, the README's picture of the web console (not run by the tests).

    .venv/bin/python docs/console_screenshot.py [--out docs/console.png]

Starts a simulator process and ``execledger run`` (SQLite in a temporary directory, an API token), sends four
signals through the typed client and moves the simulator's price so that one entry fills and exits at its
take-profit, one is stopped out, one holds a position and one rests; the console's signal page is open in
Debian's Chromium meanwhile (so it observes the price), then the page of the take-profit signal is saved as a
PNG. Needs /usr/bin/chromium (``apt-get install -y chromium``) and the dev extras (playwright).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from playwright.async_api import async_playwright

from execledger.infrastructure.client import ExecledgerClient

ROOT = Path(__file__).resolve().parent.parent
EXECLEDGER = str(Path(sys.executable).with_name("execledger"))
CHROMIUM = os.environ.get("EXECLEDGER_CHROMIUM", "/usr/bin/chromium")
KEY, SECRET = "docs-key", base64.b64encode(b"d" * 64).decode()
TOKEN = "docs-console-token-" + "x" * 24  # a throwaway: the service lives as long as this script


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(probe, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await probe():
                return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(what)


def bracket(signal_id: str, **fields: str) -> dict:
    return {"signal_id": signal_id, "pair": "XBT/USD", "side": "buy", "quantity": "0.01", **fields}


async def main(out: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="execledger-docs-"))
    sim_port, api_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
    env |= {
        "EXECLEDGER_DATA_DIR": str(tmp / "data"),
        "EXECLEDGER_KRAKEN_URL": f"http://127.0.0.1:{sim_port}",
        "EXECLEDGER_KRAKEN_WS_URL": f"ws://127.0.0.1:{sim_port}/v2",
        "EXECLEDGER_KRAKEN_KEY": KEY,
        "EXECLEDGER_KRAKEN_SECRET": SECRET,
        "EXECLEDGER_KRAKEN_TIER": "none",
        "EXECLEDGER_API_PORT": str(api_port),
        "EXECLEDGER_API_TOKEN": TOKEN,
    }
    sim_argv = ["simulator", "--host", "127.0.0.1", "--port", str(sim_port), "--key", KEY, "--secret", SECRET]
    logs = (tmp / "simulator.log").open("w"), (tmp / "service.log").open("w")
    sim = subprocess.Popen([EXECLEDGER, *sim_argv], env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    service = None
    api, sim_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sim_port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def sim_up():
                async with http.get(f"{sim_url}/_sim/faults") as r:
                    return r.status == 200

            await until(sim_up, "simulator")
            service = subprocess.Popen([EXECLEDGER, "run"], env=env, stdout=logs[1], stderr=subprocess.STDOUT)

            async def price(value: str) -> None:
                async with http.post(f"{sim_url}/_sim/price", json={"pair": "XBT/USD", "price": value}) as r:
                    r.raise_for_status()

            async with ExecledgerClient(api, token=TOKEN, session=http) as client:

                async def recovered():
                    return (await client.health())["trading"].get("recovered") is True

                await until(recovered, "service recovered", 90)
                await price("51000")
                await client.submit_signal(
                    bracket("breakout-tp", order_type="limit", limit_price="50500", sl_price="49000", tp_price="53000")
                )
                await client.submit_signal(
                    bracket("dip-stop", order_type="limit", limit_price="50200", sl_price="49600", tp_price="56000")
                )
                await client.submit_signal(
                    bracket("trend-open", order_type="market", sl_price="47000", tp_price="58000", quantity="0.02")
                )
                await client.submit_signal(bracket("deep-bid", order_type="limit", limit_price="42000"))
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(
                        executable_path=CHROMIUM, headless=True, args=["--no-sandbox"] if os.geteuid() == 0 else []
                    )
                    page = await browser.new_page(viewport={"width": 1120, "height": 760})  # < 150 KB as PNG
                    await page.goto(f"{api}/console/login?next=/console/signals/breakout-tp")
                    await page.fill("#token", TOKEN)
                    await page.click("#login button[type=submit]")
                    await page.wait_for_url("**/console/signals/breakout-tp")
                    for value in (
                        "50800",
                        "50450",
                        "50150",
                        "50600",
                        "51400",
                        "52100",
                        "52700",
                        "53100",
                        "52400",
                        "50900",
                        "49500",
                        "50300",
                        "51200",
                    ):
                        await price(value)
                        await asyncio.sleep(5.2)  # the console asks the venue's price at most every 5 s
                    await page.reload()
                    await page.wait_for_load_state("networkidle")
                    await page.screenshot(path=str(out))
                    await browser.close()
    finally:
        for proc in (service, sim):
            if proc is not None:
                proc.terminate()
                proc.wait(15)
        for log in logs:
            log.close()
    print(f"{out}: {out.stat().st_size} bytes (logs in {tmp})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png")
    asyncio.run(main(parser.parse_args().out))
