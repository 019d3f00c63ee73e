"""The web console: server-rendered pages under ``/console`` served by the API process (``pages.py``).

Reads go through the same read-side queries as the JSON API (``readmodels/queries.py``, ``signal_view.py``, the
audit timeline); the operator buttons post to the very handlers of ``/v1/trading/*``, ``/v1/orders/{id}/cancel``
and ``/v1/signals/{id}/close`` (``trading.py``: the same command bus, the same receipts), under the console's
session and CSRF token instead of the bearer token (``sessions.py``).
"""
