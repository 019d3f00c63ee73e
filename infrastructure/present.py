"""How the operator's surface spells things: one place for pair names, statuses and exit reasons.

- Pairs are shown as the signal gave them in Kraken's WS notation (``XBT/USD``, AssetPairs ``wsname``), not as the
  AssetPairs key the ledger stores (``XXBTZUSD``); the three accepted spellings all name the same pair (DESIGN.md).
- Statuses are the ledger's lower-case names (``filled``, ``partially_filled``); the execution-report table stores
  them upper case (the review's shape), so reports are translated on the way out.
"""

from __future__ import annotations

from execledger.domain.pairs import PairRegistry


def pair_name(pairs: PairRegistry | None, key: str | None) -> str | None:
    """``XXBTZUSD`` -> ``XBT/USD`` (unknown names are returned unchanged)."""
    if key is None or pairs is None:
        return key
    rules = pairs.find(key)
    return rules.wsname if rules is not None else key


def status_name(status: str | None) -> str | None:
    """One spelling of statuses everywhere: ``FILLED`` and ``filled`` -> ``filled``."""
    return None if status is None else status.lower()


# Which exit closed a position, from the role of the leg that filled it (and the rule that created an exit leg).
EXIT_REASONS = ("take_profit", "stop_loss", "manual", "timeout", "canceled", "rejected", "open", "not_filled")


def exit_reason_of(role: str, placed_rule: str | None) -> str:
    """The exit reason a filled leg stands for: its role, or for a market exit the rule that placed it."""
    if role == "take_profit":
        return "take_profit"
    if role == "stop_loss":
        return "stop_loss"
    if placed_rule and ("stop" in placed_rule):
        return "stop_loss"  # a stop rejected for good exits at market: still the stop's decision
    return "manual"
