"""Signing against Kraken's published test vector (REFERENCE.md section 1)."""

import pytest

from execledger.infrastructure.kraken.auth import InvalidSecret, decode_secret, sign, verify

SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
NONCE = "1616492376594"
BODY = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
EXPECTED = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="


def test_published_vector():
    assert sign("/0/private/AddOrder", NONCE, BODY, decode_secret(SECRET)) == EXPECTED


def test_verify_rejects_tampered_body_path_or_nonce():
    secret = decode_secret(SECRET)
    assert verify("/0/private/AddOrder", NONCE, BODY, secret, EXPECTED)
    assert not verify("/0/private/AddOrder", NONCE, BODY.replace("1.25", "12.5"), secret, EXPECTED)
    assert not verify("/0/private/CancelOrder", NONCE, BODY, secret, EXPECTED)
    assert not verify("/0/private/AddOrder", "1616492376595", BODY, secret, EXPECTED)


@pytest.mark.parametrize("bad", ["", "not base64!!", "abc"])
def test_bad_secret_is_a_clear_error_without_echoing_it(bad):
    with pytest.raises(InvalidSecret) as info:
        decode_secret(bad)
    assert (bad not in str(info.value)) or bad == ""
