"""The Orders store's transcoder: the library's JSON transcoding, decoded with orjson, reads back exactly what the
library's own decoder reads (tagged types nested in objects and lists, what orjson refuses), and the store uses it."""

import math
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Transcoding

from execledger.domain.values import OrderRole
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
        "big": 2**70 + 1,  # orjson reads integers beyond 64 bits as floats: the library's decoder reads them
        "negative": -(2**63) - 1,
    },
    {"f": 1.5, "empty": {}, "n": None, "t": True},
]


@pytest.mark.parametrize("state", STATES)
def test_decodes_what_the_library_decodes(state):
    library, fast = transcoders()
    data = library.encode(state)
    decoded = fast.decode(data)
    assert decoded == library.decode(data) == state
    assert all(type(decoded[k]) is type(v) for k, v in state.items())
    assert type(decoded["f" if "f" in decoded else "quantity"]) is type(state["f" if "f" in state else "quantity"])


@pytest.mark.parametrize(
    "value",
    [
        2**64,  # orjson reads from 2**64 up as a float
        -(2**63) - 1,
        [1, {"legs": [2**80, 1.5]}],  # in a list, under a tagged-free object
        {"at": [-(2**100)]},
        2**64 - 1,  # still an integer to orjson: decoded by it, and the same
        [1e300, -1e-300, 9.2e18],  # floats the library reads as floats
    ],
)
def test_integers_beyond_64_bits_are_decoded_as_the_library_decodes_them(value):
    library, fast = transcoders()
    data = library.encode(value)
    assert fast.decode(data) == library.decode(data) == value
    assert repr(fast.decode(data)) == repr(value)  # integers stay integers, floats floats


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


# --- encoding: orjson writes the library's document ------------------------------------------------------------

from enum import StrEnum  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from execledger.application.engine import EngineConfig  # noqa: E402
from execledger.application.policies import PolicyConfig  # noqa: E402
from execledger.application.ports import PlaceResult, PlaceStatus  # noqa: E402
from tests.harness import Harness  # noqa: E402


class Colour(StrEnum):
    RED = "red"


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.datetimes(timezones=st.just(UTC))
    | st.uuids()
    | st.just(Colour.RED)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def same_document(library: JSONTranscoder, fast: OrjsonTranscoder, state) -> None:
    """What the fast encoder writes reads back (with either decoder) as what the library's bytes read back as;
    without floats the bytes are the library's."""
    expected = library.encode(state)
    written = fast.encode(state)
    assert library.decode(written) == library.decode(expected)
    assert fast.decode(written) == library.decode(expected)
    if b"." not in expected and b"e" not in expected.lower():
        assert written == expected


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), VALUES, max_size=6))
def test_encodes_the_document_the_library_encodes(state):
    library, fast = transcoders()
    try:
        library.encode(state)
    except (UnicodeEncodeError, ValueError):  # lone surrogates: the library cannot write them, nor can we
        with pytest.raises((UnicodeEncodeError, ValueError)):
            fast.encode(state)
        return
    same_document(library, fast, state)


def test_what_orjson_would_write_otherwise_is_encoded_by_the_library():
    library, fast = transcoders()
    for state in ({"x": math.nan}, {"x": [math.inf]}, {"x": 2**70}, {1: "int key"}, {"x": (1, 2)}):
        assert fast.encode(state) == library.encode(state)
    with pytest.raises(Exception, match="not"):
        fast.encode({"x": object()})  # no transcoding: refused as the library refuses it


class DecimalAsFloatText(Transcoding):
    """Another transcoding for Decimal than the library's (another tag): the walk must not write its own."""

    type = Decimal
    name = "decimal_float_text"

    def encode(self, obj: Decimal) -> str:
        return repr(float(obj))

    def decode(self, data: str) -> Decimal:
        return Decimal(data)


def test_other_transcodings_for_the_tagged_types_are_encoded_by_the_library():
    library, fast = JSONTranscoder(), OrjsonTranscoder()
    for transcoder in (library, fast):
        transcoder.register(DecimalAsFloatText())
    state = {"quantity": Decimal("0.5"), "nested": [{"price": Decimal("2")}]}
    assert fast.encode(state) == library.encode(state)
    assert b"decimal_float_text" in fast.encode(state)


async def test_every_event_the_ledger_writes_reads_back_as_the_library_writes_it(ledger, clock):
    """Events of an eventful signal's life, as the store holds them: re-encoded by both, the same documents."""
    h = Harness(ledger, clock, EngineConfig(policy=PolicyConfig(default_timeout_s=300, resting_leg="both")))
    entry = await h.signal(signal_id="enc1", timeout_s=60)
    h.venue.fill(h.txid(entry), "0.4", "100")
    await h.settle()
    clock.advance(60)
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    h.venue.fill(h.txid(sl), "0.4", "90")
    await h.settle()
    h.venue.script = [PlaceResult(PlaceStatus.REJECTED, error="EOrder:Insufficient funds")]
    await h.signal(signal_id="enc2")
    library, fast = transcoders()
    app = h.engine.app
    topics = set()
    for n in app.recorder.select_notifications(start=1, limit=10_000):
        state = library.decode(n.state)
        topics.add(n.topic.rsplit(".", 1)[-1])
        same_document(library, fast, state)
        assert fast.encode(state) == app.mapper.transcoder.encode(state)
    assert {"Placed", "Submitted", "Acknowledged", "PartiallyFilled", "BracketPlaced", "TimedOut", "Filled"} <= topics


# --- mapping: OrjsonMapper stores what eventsourcing's Mapper stores ---------------------------------------------

from datetime import timedelta, timezone  # noqa: E402

from eventsourcing.compressor import ZlibCompressor  # noqa: E402
from eventsourcing.domain import Aggregate  # noqa: E402
from eventsourcing.persistence import Mapper  # noqa: E402

from execledger.infrastructure.transcoder import OrjsonMapper  # noqa: E402


def mappers(**kwargs) -> tuple[Mapper, OrjsonMapper]:
    library, fast = transcoders()
    return Mapper(transcoder=library, **kwargs), OrjsonMapper(transcoder=fast, **kwargs)


class Noted(Aggregate.Event):
    """An event with what the walk writes itself and what it leaves to the library."""

    class_version = 3
    at: datetime
    colour: Colour
    detail: dict


def noted(**detail) -> Noted:
    return Noted(
        originator_id=uuid4(),
        originator_version=2,
        timestamp=datetime(2026, 12, 2, 5, 0, tzinfo=UTC),
        at=datetime(2026, 12, 2, 6, 0, 0, 5, tzinfo=timezone(timedelta(hours=1))),
        colour=Colour.RED,
        detail=detail,
    )


@pytest.mark.parametrize(
    "event",
    [
        noted(price=Decimal("1.5"), when=datetime(2026, 1, 1, tzinfo=UTC), naive=datetime(2026, 1, 1, 0, 0, 0, 7)),
        noted(x=math.nan),  # orjson would write null: the library's encoder writes it
        noted(big=2**70),
        noted(colours=[Colour.RED, "red"], ids=(uuid4(),)),
    ],
)
def test_the_mapper_stores_what_the_library_mapper_stores(event):
    library, fast = mappers()
    assert fast.to_stored_event(event) == library.to_stored_event(event)
    assert library.to_domain_event(fast.to_stored_event(event)).__dict__.keys() == event.__dict__.keys()


def test_an_event_of_tagged_types_is_mapped_without_the_library(monkeypatch):
    library, fast = mappers()
    event = noted(price=Decimal("1.5"), when=datetime(2026, 1, 1, tzinfo=UTC), ids=[uuid4()])
    expected = library.to_stored_event(event)

    def refused(*args):
        raise AssertionError("the library's to_stored_event was called")

    monkeypatch.setattr(Mapper, "to_stored_event", refused)
    assert fast.to_stored_event(event) == expected


def _flat(*stored) -> list:
    return [x for s in stored for x in (s.originator_id, s.originator_version, s.topic, s.state)]


def test_flat_rows_are_the_library_mappers_stored_events_in_order():
    """``flat_rows`` (the unit of work's save path) gives each event's stored values in turn, the library mapper's,
    whether the walk writes the event or leaves it to the library (NaN, a long integer)."""
    library, fast = mappers()
    events = [
        noted(price=Decimal("1.5"), when=datetime(2026, 1, 1, tzinfo=UTC), ids=[uuid4()]),
        noted(x=math.nan),
        noted(big=2**70),
        noted(colours=[Colour.RED, "red"], ids=(uuid4(),)),
    ]
    assert fast.flat_rows(events) == _flat(*map(library.to_stored_event, events))
    assert fast.flat_rows([]) == []


def test_with_a_compressor_flat_rows_are_the_library_mappers():
    library, fast = mappers(compressor=ZlibCompressor())
    events = [noted(price=Decimal("2")), noted(price=Decimal("3"))]
    assert fast.flat_rows(events) == _flat(*map(library.to_stored_event, events))


def test_with_a_compressor_the_library_maps():
    library, fast = mappers(compressor=ZlibCompressor())
    event = noted(price=Decimal("2"))
    assert fast.to_stored_event(event) == library.to_stored_event(event)


async def test_every_event_the_ledger_stores_is_the_library_mappers(ledger, clock):
    """The bytes stored for each event of an eventful signal's life are what eventsourcing's own Mapper (with its
    JSONTranscoder) writes for that event."""
    h = Harness(ledger, clock, EngineConfig(policy=PolicyConfig(default_timeout_s=300, resting_leg="both")))
    entry = await h.signal(signal_id="map1", timeout_s=60)
    h.venue.fill(h.txid(entry), "0.4", "100")
    await h.settle()
    [sl] = h.legs(entry, OrderRole.STOP_LOSS)
    h.venue.fill(h.txid(sl), "0.4", "90")
    await h.settle()
    app = h.engine.app
    assert isinstance(app.mapper, OrjsonMapper)
    library, _ = mappers()
    notifications = app.recorder.select_notifications(start=1, limit=10_000)
    for n in notifications:
        event = app.mapper.to_domain_event(n)
        assert library.to_stored_event(event).state == n.state, n.topic
    assert len(notifications) >= 8
