"""The API's main queries are served by indexes (EXPLAIN on PostgreSQL), and schema creation is idempotent."""

import pytest
from sqlalchemy import text

from execledger.infrastructure.readmodels import tables as t
from execledger.infrastructure.readmodels.projector import readmodel_engine

QUERIES = {
    "ix_orders_signal": "SELECT * FROM orders WHERE signal_id = 'x'",
    "ix_orders_pair_status": "SELECT * FROM orders WHERE pair = 'XXBTZUSD' AND status = 'open'",
    "ix_reports_pair_time": "SELECT * FROM execution_reports WHERE trading_pair = 'XXBTZUSD' "
    "AND timestamp >= '2026-01-01' ORDER BY timestamp",
    "ix_reports_signal": "SELECT * FROM execution_reports WHERE signal_id = 'x'",
    "ix_fills_signal": "SELECT * FROM fills WHERE signal_id = 'x'",
    "ix_decisions_signal": "SELECT * FROM decisions WHERE signal_id = 'x'",
}


@pytest.fixture
def db(settings):
    engine = readmodel_engine(settings)
    t.metadata.create_all(engine)
    t.metadata.create_all(engine)  # idempotent: a second start creates nothing and fails nothing
    yield engine
    engine.dispose()


@pytest.mark.parametrize(("index", "query"), sorted(QUERIES.items()))
def test_main_queries_can_use_their_index(db, index, query):
    with db.connect() as conn:
        if db.dialect.name == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))  # empty tables: ask whether an index *can* serve it
            plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {query}")))
        else:
            plan = "\n".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {query}")))
    assert index in plan, plan
