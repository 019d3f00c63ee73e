"""Compare the read model's orders (and fills) with the ledger's aggregates: status, filled qty, avg price, fees,
version, txid; and each fill row vs the aggregate's trades. Usage: readmodel_vs_ledger.py DATA_DIR [DATABASE_URL]"""
import sys
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from execledger.infrastructure.bootstrap import open_ledger
from execledger.infrastructure.readmodels import tables as t
from execledger.infrastructure.settings import Settings

data = Path(sys.argv[1])
kw = {"database_url": sys.argv[2]} if len(sys.argv) > 2 else {}
bad = 0
with open_ledger(Settings(data_dir=data, **kw)) as lg:
    lg.projector.catch_up()
    orders = {str(o.id): o for o in lg.ledger.load_orders(everything=True)}
    with lg.db.connect() as c:
        rows = {r.order_id: r for r in c.execute(select(t.orders))}
        fills = list(c.execute(select(t.fills)))
    for oid, o in orders.items():
        r = rows.get(oid)
        if r is None:
            print("missing row", oid); bad += 1; continue
        want = (o.state.value, Decimal(o.filled_quantity), o.average_fill_price, Decimal(o.fees), o.txid, o.version)
        got = (r.status, Decimal(r.filled_quantity), r.average_fill_price, Decimal(r.fees), r.txid, r.version)
        w = (want[0], want[1], None if want[2] is None else Decimal(want[2]), want[3], want[4], want[5])
        g = (got[0], got[1], None if got[2] is None else Decimal(got[2]), got[3], got[4], got[5])
        if w != g:
            print("differs", oid, o.role.value, o.signal_id, "ledger", w, "readmodel", g); bad += 1
    extra = set(rows) - set(orders)
    if extra:
        print("rows without an order", len(extra)); bad += len(extra)
    per = {}
    for f in fills:
        per.setdefault(f.order_id, []).append(f)
    for oid, o in orders.items():
        n = len(per.get(oid, []))
        trades = len(getattr(o, "trades", None) or getattr(o, "trade_ids", None) or [])
        if trades and n != trades:
            print("fills", oid, "ledger trades", trades, "fill rows", n); bad += 1
    print(f"{data}: {len(orders)} orders, {len(fills)} fill rows, {bad} differences")
