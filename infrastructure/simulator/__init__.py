"""A local Kraken Spot exchange (REST + WS v2 ``executions``) for paper trading, demos and fault tests.

    async with KrakenSimulator(seed=1) as sim:      # 127.0.0.1, a free port
        sim.rest_url, sim.ws_url, sim.key, sim.secret
        sim.set_mark_price("XBT/USD", "65000"); sim.advance_price("XBTUSD", steps=10); sim.advance_time(30)
        sim.inject_fault("AddOrder", FaultKind.HTTP_502_AFTER_EXECUTE, count=2)
        sim.requests("AddOrder", cl_ord_id="...")

Modules: ``engine`` (the pure matching core) with ``orderentry`` (AddOrder validation), ``prices``, ``ids``,
``clock``; the wire: ``rest``, ``views``, ``ws``, ``executions``; ``limits`` and ``faults``; ``control`` (the
``/_sim`` HTTP surface); ``server`` (``KrakenSimulator``) and ``config`` (``SimulatorConfig``).
"""

from .config import SimulatorConfig
from .faults import FaultKind
from .limits import REST_TIERS, TRADING_TIERS, Tier
from .server import KrakenSimulator

__all__ = ["REST_TIERS", "TRADING_TIERS", "FaultKind", "KrakenSimulator", "SimulatorConfig", "Tier"]
