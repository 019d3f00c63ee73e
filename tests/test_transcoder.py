"""The Orders store's transcoder: the library's JSON transcoding, decoded with orjson, reads back exactly what the
library's own decoder reads (tagged types nested in objects and lists, what orjson refuses), and the store uses it."""

import math
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder

from execledger.infrastructure.eventstore import open_orders_app
from execledger.infrastructure.transcoder import OrjsonTranscoder


def transcoders() -> tuple[JSONTranscoder, OrjsonTranscoder]:
    library, fast = JSONTranscoder(), OrjsonTranscoder()
    app = Application()
    app.register_transcodings(library)
    app.register_transcodings(fast)
    return library, fast


STATES = [
    {
        "timestamp": datetime(2026, 12, 1, 9, 30, 1, 123456, tzinfo=UTC),
        "quantity": Decimal("0.00010000"),
        "parent_id": uuid4(),
        "reason": {"rule": "r", "rounded": {"qty": Decimal("1E-8")}, "legs": [{"price": Decimal("-3.5")}, 2, None]},
        "nested": [[Decimal("1"), {"at": datetime(2026, 1, 1, tzinfo=UTC)}], []],
        "plain": {"_type_": "only one key"},
        "text": "é ✓",
        "big": 2**70,  # orjson refuses integers beyond 64 bits: the library's decoder reads them
    },
    {"f": 1.5, "empty": {}, "n": None, "t": True},
]


@pytest.mark.parametrize("state", STATES)
def test_decodes_what_the_library_decodes(state):
    library, fast = transcoders()
    data = library.encode(state)
    decoded = fast.decode(data)
    assert decoded == library.decode(data) == state
    assert type(decoded["f" if "f" in decoded else "quantity"]) is type(state["f" if "f" in state else "quantity"])


def test_what_orjson_refuses_is_decoded_as_before():
    library, fast = transcoders()
    data = library.encode({"x": math.nan})
    assert math.isnan(fast.decode(data)["x"])


def test_the_orders_store_decodes_with_it(settings):
    app = open_orders_app(settings)
    try:
        assert isinstance(app.mapper.transcoder, OrjsonTranscoder)
    finally:
        app.close()
