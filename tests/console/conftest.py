"""A real headless Chromium for the console's browser tests, driven by Playwright.

The browser is Debian's (``apt-get install -y chromium``, which ``.ci/run`` does when /usr/bin/chromium is
missing), never one Playwright downloads: ``EXECLEDGER_CHROMIUM`` overrides the path. Where no browser can be had
the tests are skipped with the reason, except in CI (``CI=true``), where that fails them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("EXECLEDGER_CHROMIUM", "/usr/bin/chromium"))


def _unavailable() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        return f"playwright is not installed ({exc}): pip install -e '.[dev]'"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does it)"
    return None


@pytest.fixture
async def browser():
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses to run as root (CI is root)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            yield chromium
        finally:
            await chromium.close()
