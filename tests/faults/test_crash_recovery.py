"""Issue 8's fault-injection suite, bounded for CI: 20 randomized kill/restart runs of the real service process
against a standalone simulator process, with faults injected (issue 13's protection faults among them), and the
invariants checked after every run (see ``tests/faults/harness.py`` and ``tests/faults/protection.py``).
``bench/soak.py`` runs the same harness for longer.

Reproduce a failure with its seed: ``EXECLEDGER_FAULT_SEED=<seed> .venv/bin/python -m pytest tests/faults -s``.
``EXECLEDGER_FAULT_RUNS`` changes the number of runs; ``EXECLEDGER_FAULT_BACKEND=postgres`` runs it on PostgreSQL.
"""

from __future__ import annotations

import os

from tests.faults.harness import Backend, soak

RUNS = int(os.environ.get("EXECLEDGER_FAULT_RUNS", "20"))
SEED = int(os.environ.get("EXECLEDGER_FAULT_SEED", "8"))


async def test_random_kills_and_faults_keep_ledger_and_venue_consistent(tmp_path):
    backend = Backend.from_env()
    if backend.name == "postgres":
        from tests.conftest import require_postgres

        require_postgres()
    print(f"fault suite: seed {SEED}, {RUNS} runs, backend {backend.name}")
    result = await soak(runs=RUNS, seed=SEED, work_dir=tmp_path, backend=backend)
    print(result.summary())
    assert result.violations == [], f"seed {SEED}: " + "\n".join(result.violations)
    assert result.runs == RUNS and result.kills >= RUNS and sum(result.faults.values()) > 0
