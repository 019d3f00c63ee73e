"""Pure domain model of execledger: values, pair rules, the trade signal and the Order aggregate.

Nothing here performs I/O or imports from ``application`` or ``infrastructure`` (checked by import-linter).
"""
