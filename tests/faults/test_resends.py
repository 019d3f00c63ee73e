"""Invariant 3 of the fault suite on its own (``tests/faults/resends.py``): which AddOrder repeats it accepts and
which it flags, on request-log records and order histories made here."""

from types import SimpleNamespace

from tests.faults.resends import add_order_violations, recorded_attempts

CL = "c492ee71-0000-4000-8000-000000000001"


def call(status=200, error=None):
    return {"params": {"cl_ord_id": CL}, "status": status, "error": error}


def history(*names, error_class="not_executed"):
    return [SimpleNamespace(name=n, data={"reason": {"error_class": error_class}}) for n in names]


def check(calls, names=None, error_class="not_executed"):
    recorded = None if names is None else recorded_attempts(history(*names, error_class=error_class))
    return add_order_violations(calls, lambda cl: recorded if cl == CL else None)


ONE_REFUSAL = ("Placed", "Submitted", "NotSent", "Submitted", "Acknowledged")


def test_one_add_order_per_cl_ord_id_is_fine():
    assert check([call()], ("Placed", "Submitted", "Acknowledged")) == []


def test_sent_again_after_a_recorded_certain_refusal_is_fine():
    for error in ("EOrder:Rate limit exceeded", "EAPI:Invalid nonce", "EOrder:Insufficient funds"):
        assert check([call(error=error), call()], ONE_REFUSAL) == []


def test_sent_again_after_an_unknown_outcome_is_a_blind_resend():
    for first in (call(status=502), call(error="EService:Unavailable"), call()):
        (finding,) = check([first, call()], ONE_REFUSAL)
        assert "blind resend" in finding and CL in finding


def test_a_refusal_the_ledger_did_not_record_does_not_explain_a_repeat():
    refusal = call(error="EOrder:Rate limit exceeded")
    (finding,) = check([refusal, call()], ("Placed", "Submitted", "Submitted", "Acknowledged"))
    assert "recorded only 0 certain refusal" in finding
    (finding,) = check([refusal, call()], ONE_REFUSAL, error_class="retryable")  # a NotSent of the breaker
    assert "recorded only 0 certain refusal" in finding


def test_an_add_order_nobody_decided_is_flagged():
    (finding,) = check([call(error="EOrder:Rate limit exceeded"), call()], ("Placed", "Submitted", "NotSent"))
    assert "decided only 1" in finding
    (finding,) = check([call()], None)
    assert "no ledger order" in finding
