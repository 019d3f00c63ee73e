"""What making every read-model row storable costs: CPU time inside ``database.storable`` during a rebuild,
against the rebuild's whole CPU time, over the log of ``projection_rebuild.py`` (18 events per signal).

``storable`` escapes NUL and lone surrogates and cuts text to its column, so that no text in the log can stop the
read models (see ``infrastructure/readmodels/database.py``). CPU time (``time.process_time``) is steadier than
wall time while other suites share the machine.

Usage: .venv/bin/python bench/readmodel_text_cost.py [--signals 1000] [--rounds 3] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import time

from common import backend_settings, write_result
from projection_rebuild import signal_orders

import execledger.infrastructure.readmodels.database as projector_module
from execledger.infrastructure.bootstrap import open_ledger


def measure(backend: str, signals: int, rounds: int) -> dict:
    real = projector_module.storable
    spent = {"s": 0.0, "rows": 0}

    def timed(table, rows):
        started = time.process_time()
        out = real(table, rows)
        spent["s"] += time.process_time() - started
        spent["rows"] += len(rows)
        return out

    results = []
    with backend_settings(backend) as settings, open_ledger(settings) as lg:
        for i in range(0, signals, 50):
            lg.app.save(*[o for n in range(i, min(i + 50, signals)) for o in signal_orders(n)])
        projector_module.storable = timed
        try:
            for _ in range(rounds):
                spent.update(s=0.0, rows=0)
                started = time.process_time()
                events = lg.projector.rebuild()
                total = time.process_time() - started
                results.append({"events": events, "rows": spent["rows"], "storable_s": spent["s"], "rebuild_s": total})
        finally:
            projector_module.storable = real
    shares = sorted(r["storable_s"] / r["rebuild_s"] for r in results)
    return {"rounds": results, "share_min": round(shares[0], 4), "share_median": round(shares[len(shares) // 2], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--signals", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    results = {b: measure(b, args.signals, args.rounds) for b in args.backends.split(",")}
    path = write_result("readmodel_text_cost", {"signals": args.signals, "results": results})
    for b, r in results.items():
        last = r["rounds"][-1]
        print(
            f"{b:9s} {last['events']} events, {last['rows']} rows: storable {100 * r['share_median']:.1f} % of the "
            f"rebuild's CPU time (median of {args.rounds}; min {100 * r['share_min']:.1f} %)"
        )
    print(f"written to {path.relative_to(path.parents[2])}")


if __name__ == "__main__":
    main()
