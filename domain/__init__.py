"""Pure domain model of execledger: values, pair rules, the trade signal and the Order aggregate.

Nothing here performs I/O or imports from ``application`` or ``infrastructure`` (checked by import-linter).
"""

import sys

from eventsourcing.utils import register_topic

# Events stored before the package was installed as ``execledger`` carry topics such as
# ``domain.order:Order.Placed``: they resolve to this package's classes (tests/test_ledger.py loads one).
register_topic("domain", sys.modules[__name__])
