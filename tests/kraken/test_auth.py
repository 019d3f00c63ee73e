"""Signing against Kraken's published test vector (REFERENCE.md section 1)."""

import pytest

from execledger.infrastructure.kraken.auth import InvalidSecret, Signer, decode_secret, sign, verify

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


def test_the_keyed_signer_gives_the_published_vector_and_what_sign_gives():
    secret = decode_secret(SECRET)
    signer = Signer(secret)
    assert signer.sign(b"/0/private/AddOrder", NONCE.encode(), BODY.encode()) == EXPECTED
    for nonce, body in [("1", ""), ("1616492376595", BODY + "&x=%2F"), ("9" * 19, "nonce=" + "9" * 19)]:
        # keyed once, each signature from a copy: one call never leaves state behind for the next
        assert signer.sign(b"/0/private/CancelOrder", nonce.encode(), body.encode()) == sign(
            "/0/private/CancelOrder", nonce, body, secret
        )
    assert SECRET not in repr(signer) and secret.hex() not in repr(signer)
