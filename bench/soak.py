"""The long fault-injection soak of issue 8: the CI suite's harness (``tests/faults/harness.py``) for many more runs.

    .venv/bin/python bench/soak.py --runs 500 --seed 1 [--backend postgres] [--parallel 2] [--outages 0.3]

Each run SIGKILLs the real service process at a random moment while signals, price moves and faults (delayed
replies, 502 before/after execution, EService:Unavailable, rate limits, WS disconnects and stalls; and issue 13's:
nonce and funds refusals, fees in the base asset, held requests, AssetPairs rule changes, wall-clock steps of the
service's machine) hit it, restarts it (sometimes killing it again during start-up recovery), settles, stops it with
SIGTERM and checks the invariants (``tests/faults/harness.py``; no over-exit and no naked position:
``tests/faults/protection.py``). With ``--outages`` that share of the runs cut the venue off instead (a refused
port or a 502 page for every call) for 1.5-3 times the circuit breaker's open time while bursts of signals arrive,
and check the outage invariants of ``tests/faults/outages.py`` as well (events per order while the breaker is open,
health within 1 s, the venue called again within one half-open interval of its return). Writes
``bench/results/soak.json`` (runs, faults by kind, kills and what they hit, the longest naked position, outages,
violations) and prints one line.
Exit code 1 when any violation was found.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from common import PG_URL, write_result  # also puts the repository on sys.path

from tests.faults.harness import Backend, soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--database-url", default=PG_URL, help="PostgreSQL for --backend postgres (a fresh schema per session)"
    )
    parser.add_argument("--runs-per-session", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=2, help="sessions run at once")
    parser.add_argument(
        "--outages",
        type=float,
        default=0.0,
        help="share of the runs that are venue outages longer than the breaker's open time with bursts of signals "
        "(tests/faults/outages.py); 0 keeps every seed's schedule of kill runs",
    )
    parser.add_argument("--name", default="soak", help="the result file: bench/results/NAME.json")
    args = parser.parse_args()
    backend = Backend(args.backend, args.database_url if args.backend == "postgres" else None)
    with tempfile.TemporaryDirectory(prefix="execledger-soak-") as tmp:
        result = asyncio.run(
            soak(
                runs=args.runs,
                seed=args.seed,
                work_dir=Path(tmp),
                backend=backend,
                runs_per_session=args.runs_per_session,
                parallel=args.parallel,
                outages=args.outages,
                on_run=lambda label, problems: problems and print("\n".join(problems), flush=True),
            )
        )
    write_result(args.name, {"command": " ".join(["bench/soak.py", *sys.argv[1:]]), **result.as_json()})
    print(result.summary())
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
