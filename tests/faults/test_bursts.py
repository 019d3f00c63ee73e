"""Bursts against the group-commit write path with real processes (``tests/faults/bursts.py``): a HALT posted in the
middle of a burst stops every entry not yet on the wire, and a SIGKILL during a burst of fills loses nothing and
leaves every filled position protected (the harness's invariants, ``Session.check``)."""

from __future__ import annotations

import pytest

from tests.faults.bursts import main


@pytest.mark.parametrize("scenario", ["halt", "kill"])
async def test_a_burst_keeps_every_invariant(scenario, tmp_path):
    problems = await main(scenario, runs=1, seed=1, backend_name="sqlite", work_dir=tmp_path)
    assert problems == []
