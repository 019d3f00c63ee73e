"""The two event-sourced applications of a ledger (persistence is chosen by their env).

``Commands`` is the inbox: any process records a ``Command`` there. ``Orders`` holds the orders, the trading
state and the command receipts, is written only by the trading process, and *follows* ``Commands`` with
eventsourcing's follower machinery (notification log reader, mapper, tracking records), so that a command's
decisions and its tracking position are recorded in one transaction: each command is carried out exactly once.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.system import Follower

from execledger.domain.order import Order

COMMANDS = "Commands"


class CommandsApp(Application[UUID]):
    """The commands log. ``name`` prefixes its env keys, its SQLite file and (PostgreSQL) its table names."""

    name = COMMANDS
    log_section_size = 1000


class OrdersApp(Follower[UUID]):
    """Order aggregates, the trading state and command receipts; follows the commands log."""

    name = "Orders"
    # Big log sections: section size 10 costs up to 4.5x on PostgreSQL (eventsourcing-notes P5).
    log_section_size = 1000
    pull_section_size = 1000

    def get_order(self, order_id: UUID) -> Order:
        order: Order = self.repository.get(order_id)
        return order
