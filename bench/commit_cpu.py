"""Our own CPU an event of the ledger's commit path, without the database: ``UnitOfWork.commit`` of new orders,
``--batch`` a save, with everything of ours real (decision order, mapper and transcoder, the recorder's parameters,
the order index) and the one database statement stubbed (SQLite: ``_insert_rows``; PostgreSQL: ``_exec_prepared``).
What ``append_throughput.py`` attributes to the ledger beyond the raw insert, measured without the disk's and the
server's noise: this process's CPU, the minimum over ``--repeats`` passes of ``--events`` events.

Usage: .venv/bin/python bench/commit_cpu.py [--backends sqlite,postgres] [--events 2000] [--batch 10] [--repeats 15]
"""

from __future__ import annotations

import argparse
import gc
import time

from append_throughput import orders
from common import backend_settings

from execledger.application.order_index import OrderIndex
from execledger.application.unit_of_work import UnitOfWork
from execledger.infrastructure.eventstore import open_orders_app


def ours_us_per_event(backend: str, events: int, batch: int, repeats: int) -> float:
    with backend_settings(backend) as settings:
        app = open_orders_app(settings)
        try:
            warm = orders(2 * batch)  # the connection kept, the statements prepared, before the stub
            UnitOfWork(app, OrderIndex()).commit(*warm[:batch])
            UnitOfWork(app, OrderIndex()).commit(*warm[batch:])
            recorder = app.recorder
            if settings.database_url is None:
                recorder._insert_rows = lambda cursor, params, returning: []
            else:
                done = object()  # a result: the save returns without reading it (no ids asked)
                recorder._exec_prepared = lambda pgconn, key, params: done
            best = float("inf")
            for _ in range(repeats):
                pending = orders(events)
                uow = UnitOfWork(app, OrderIndex())
                saves = [pending[i : i + batch] for i in range(0, events, batch)]
                gc.collect()
                began = time.process_time()
                for save in saves:
                    uow.commit(*save)
                best = min(best, time.process_time() - began)
        finally:
            app.close()
    return best / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        us = ours_us_per_event(backend, args.events, args.batch, args.repeats)
        print(f"{backend:9s} {args.batch:3d} events a save: ours {us:.2f} us of CPU an event", flush=True)


if __name__ == "__main__":
    main()
