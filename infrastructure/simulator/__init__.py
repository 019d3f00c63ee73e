"""A local Kraken Spot exchange (REST, WS v2 authenticated and public) for paper trading, demos and fault tests.

    async with KrakenSimulator(seed=1) as sim:      # 127.0.0.1, a free port; Starter-tier limits on
        sim.rest_url, sim.ws_url, sim.public_ws_url, sim.key, sim.secret
        sim.set_mark_price("SOL/USD", "142.5"); sim.advance_price("XBTUSD", steps=10); sim.advance_time(30)
        sim.inject_fault("AddOrder", FaultKind.HTTP_502_AFTER_EXECUTE, count=2)
        sim.requests("AddOrder", cl_ord_id="...")

Modules: ``engine`` (the pure matching core) with ``book`` (per-pair indexes), ``orderentry`` (AddOrder
validation), ``prices`` (walks and tapes), ``market`` (public trades and statistics), ``catalog`` (every pair and
asset), ``ids``, ``clock``, ``nonces``; the wire: ``rest`` and ``methods``, ``views``, ``ws`` with ``ws_trading``
and ``executions``, ``public_ws``; ``limits`` and ``faults``; ``control`` (the ``/_sim`` HTTP surface); ``feed``
(paper trading on a live public feed); ``embedded`` (the simulator ``execledger run`` starts); ``server``
(``KrakenSimulator``) and ``config`` (``SimulatorConfig``).
"""

from .config import SimulatorConfig
from .faults import FaultKind
from .limits import REST_TIERS, TRADING_TIERS, Tier
from .server import KrakenSimulator

__all__ = ["REST_TIERS", "TRADING_TIERS", "FaultKind", "KrakenSimulator", "SimulatorConfig", "Tier"]
