"""Run every benchmark and write bench/results/SUMMARY.md (the README quotes it with this command).

Usage: .venv/bin/python bench/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

BENCHMARKS = [  # (script, full-size arguments, --quick arguments)
    ("append_throughput.py", ["--events", "3000"], ["--events", "300"]),
    ("lifecycles.py", ["--lifecycles", "200"], ["--lifecycles", "20"]),
    ("bracket_latency.py", ["--brackets", "1000"], ["--brackets", "100"]),
    ("projection_rebuild.py", ["--signals", "3000"], ["--signals", "200"]),
    ("rest_monitoring.py", ["--window", "60"], ["--orders", "1,10", "--window", "5"]),
    ("recovery.py", ["--orders", "1000,10000"], ["--orders", "100"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    for script, full, quick in BENCHMARKS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *(quick if args.quick else full)], check=True)
    lines = [
        "# Benchmark results",
        "",
        f"Command: `.venv/bin/python bench/run_all.py{' --quick' if args.quick else ''}`",
        "",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        lines += [
            f"## {data['benchmark']} ({data['measured_at']}, {data['machine']['cpus']} CPUs)",
            "",
            "```json",
            json.dumps(data.get("results", data), indent=1),
            "```",
            "",
        ]
    (RESULTS / "SUMMARY.md").write_text("\n".join(lines))
    print(f"summary: {RESULTS / 'SUMMARY.md'}")


if __name__ == "__main__":
    main()
