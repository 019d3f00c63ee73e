"""The event-sourced application that stores Order aggregates (persistence is chosen by its env)."""

from __future__ import annotations

from eventsourcing.application import Application

from execledger.domain.order import Order


class OrdersApp(Application):
    """Order aggregates in an event store. ``name`` prefixes its env keys and (PostgreSQL) its table names."""

    name = "Orders"
    # Big log sections: section size 10 costs up to 4.5x on PostgreSQL (eventsourcing-notes P5).
    log_section_size = 1000

    def get_order(self, order_id) -> Order:
        return self.repository.get(order_id)
