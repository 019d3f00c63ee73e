"""What the REST client writes and reads without the standard library's helpers: the form body must be the bytes
``urlencode`` gives (it is what the signature covers and what Kraken parses), and an answer decoded with orjson must
be the values ``json.loads`` gives, for every REST fixture of ../shared/kraken."""

from __future__ import annotations

import enum
import json
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execledger.domain.values import OrderType, Side
from execledger.infrastructure.kraken.adapter import add_order_params
from execledger.infrastructure.kraken.rest import decode_answer, form_body
from tests.conftest import FIXTURES


class Mixed(str, enum.Enum):  # noqa: UP042  # str() of it is not its text: urlencode writes str(), so must form_body
    BUY = "buy"


FORMS = [
    {},
    {"pair": "XBT/USD", "type": "buy", "ordertype": "limit", "price": "27500.0", "volume": "1.45"},
    {"cl_ord_id": "abcdef01-2345-6789-abcd-ef0123456789", "oflags": "post,fcib", "reduce_only": "true"},
    {"deadline": "2026-12-02T09:00:00.123Z", "starttm": "+5", "close[ordertype]": "stop-loss", "txid": "O-A,O-B"},
    {"userref": 7, "negative": -3, "flag": True, "none": None, "amount": Decimal("0.00010"), "ratio": 0.5},
    {"text": "a b&c=d%e+f", "unicode": "prix €/BTC", "empty": "", "tilde": "~._-", "side": Mixed.BUY},
    {b"raw": b"by tes/", Mixed.BUY: "key"},
    {"nonce": "overridden"},  # a caller's nonce is replaced, as the dict merge does
]


@pytest.mark.parametrize("params", FORMS)
def test_the_form_body_is_what_urlencode_gives(params):
    assert form_body(1616492376594, params) == urlencode({"nonce": 1616492376594, **params})


def test_the_form_body_of_real_addorders_is_what_urlencode_gives():
    from tests.kraken.test_adapter import order_request

    requests = [
        order_request(pair="XBT/USD", post_only=True, reduce_only=True),
        order_request(order_type=OrderType.MARKET, limit_price=None, deadline=None),
        order_request(
            side=Side.SELL, order_type=OrderType.STOP_LOSS_LIMIT, trigger_price=Decimal("3.7E+4"), validate=True
        ),
    ]
    for request in requests:
        params = add_order_params(request)
        assert form_body(1, params) == urlencode({"nonce": 1, **params})


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.one_of(TEXT, st.binary(max_size=6)),
        st.one_of(TEXT, st.binary(max_size=6), st.integers(), st.booleans(), st.decimals(allow_nan=False)),
        max_size=6,
    ),
    st.integers(min_value=0, max_value=2**64 - 1),
)
def test_any_form_body_is_what_urlencode_gives(params, nonce):
    assert form_body(nonce, params) == urlencode({"nonce": nonce, **params})


REST_FIXTURES = sorted(FIXTURES.glob("rest_*.json"))


def test_there_are_rest_fixtures():
    assert len(REST_FIXTURES) >= 30


@pytest.mark.parametrize("path", REST_FIXTURES, ids=lambda p: p.name)
def test_an_answer_decodes_to_what_json_loads_gives(path):
    raw = path.read_bytes()
    decoded, expected = decode_answer(raw), json.loads(raw)
    assert decoded == expected
    assert json.dumps(decoded, sort_keys=True) == json.dumps(expected, sort_keys=True)  # types too (1 vs 1.0)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"error":[],"result":{"x":NaN,"y":Infinity}}',  # orjson refuses NaN; the standard library takes it
        '{"error":[],"result":{"pair":"XBT/USD"}}'.encode("utf-16"),
        b'\xef\xbb\xbf{"error":[],"result":1}',
        b'{"error":[],"result":{"big":123456789012345678901234567890}}',  # past 64 bits: orjson makes a float
        b'{"error":[],"result":[18446744073709551616,-9223372036854775809,18446744073709551615]}',
    ],
)
def test_what_orjson_refuses_is_decoded_by_the_standard_library(raw):
    expected = json.loads(raw)
    got = decode_answer(raw)
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


@pytest.mark.parametrize("raw", [b"", b"<html>502</html>", b'{"error":', b"\xff\xfe\x00"])
def test_what_neither_takes_is_a_value_error(raw):
    with pytest.raises(ValueError):
        decode_answer(raw)
