"""The benchmark harness runs end to end in CI (``bench/run_all.py --quick``) so a benchmark that breaks is seen.
Only completion and the summary's rows are asserted: figures from a shared machine are never a pass/fail gate."""

import os
import subprocess
import sys

from tests.conftest import IN_CI, REPO, _postgres_reachable


def test_run_all_quick_completes_and_writes_its_summary(tmp_path):
    backends = "sqlite,postgres" if IN_CI or _postgres_reachable() is None else "sqlite"
    env = {**os.environ, "EXECLEDGER_BENCH_RESULTS": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run_all.py"), "--quick", "--backends", backends],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # about a minute idle; generous for a loaded 2-core machine
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = (tmp_path / "SUMMARY.md").read_text()
    for figure in (
        "projection rebuild",
        "ledger append vs raw insert+commit",
        "end-to-end lifecycles/s",
        "fill -> stop-loss AddOrder",
        "OCO: take-profit fill -> stop cancel on the wire",
        "OCO: the same with another call hung",
        "restart -> reconciled",
        "REST calls/min",
    ):
        assert figure in summary, summary
    if "postgres" in backends:
        assert "| not run |" not in summary.replace("(SQLite only", ""), summary
