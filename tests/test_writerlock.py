"""One writer per ledger (not per key), on both backends; the probe says who holds it without taking it."""

import pytest

from execledger.infrastructure.writerlock import WriterLock, WriterLockHeld


def test_second_writer_on_the_same_ledger_refuses_then_can_take_over(settings):
    with WriterLock(settings):
        with pytest.raises(WriterLockHeld, match="refusing to start a second writer") as info:
            WriterLock(settings).acquire()
        assert "pid" in info.value.holder
    with WriterLock(settings):  # released: a standby can take over
        pass


def test_holder_probe_names_the_holder_and_leaves_the_lock_free(settings):
    assert WriterLock(settings).holder() is None
    with WriterLock(settings):
        assert "pid" in WriterLock(settings).holder()
    assert WriterLock(settings).holder() is None
    with WriterLock(settings):  # the probes above left nothing behind
        pass


def test_the_lock_file_names_no_key(settings):
    with WriterLock(settings) as lock:
        if settings.database_url is None:
            assert lock._file().name == "execledger-writer.lock"
