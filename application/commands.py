"""CommandInbox: the trading process's reader of the commands log.

It pulls the commands recorded since the last one it carried out (the tracking position in the orders store) with
eventsourcing's follower machinery, and hands each to ``TradingControl.handle``, which commits the command's
decisions, its receipt and its new tracking position in one transaction. A crash between two commands loses
nothing and repeats nothing: the next pull starts after the last committed position.
"""

from __future__ import annotations

from eventsourcing.system import NotificationLogReader

from execledger.application.orders_app import COMMANDS, CommandsApp, OrdersApp
from execledger.application.trading_control import TradingControl
from execledger.domain.clock import stamped
from execledger.domain.commands import Command


class CommandInbox:
    def __init__(self, orders: OrdersApp, commands: CommandsApp, control: TradingControl):
        self.orders = orders
        self.control = control
        # What ``Follower.follow`` sets up, with the commands app's own mapper: ``follow`` would build a second
        # store factory (and connection pool) from the orders app's env just to make an identical mapper.
        orders.readers[COMMANDS] = NotificationLogReader(commands.notification_log, orders.pull_section_size)
        orders.mappers[COMMANDS] = commands.mapper

    def position(self) -> int:
        """The position (notification id) of the last command carried out."""
        return self.orders.recorder.max_tracking_id(COMMANDS) or 0

    def pull(self) -> int:
        """Carry out every command recorded after the last one carried out; returns how many."""
        done = 0
        for notifications in self.orders.pull_notifications(COMMANDS, start=self.position(), inclusive_of_start=False):
            for issued, tracking in self.orders.convert_notifications(COMMANDS, notifications):
                command = stamped(issued).mutate(None)
                if isinstance(command, Command):
                    self.control.handle(command, tracking)
                    done += 1
        return done
