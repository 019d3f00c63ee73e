"""Single writer per API key, on both backends."""

import pytest

from execledger.infrastructure.writerlock import WriterLock, WriterLockHeld, key_fingerprint


def test_second_writer_on_the_same_key_refuses_then_can_take_over(settings):
    with WriterLock(settings, "KEY-A"):
        with pytest.raises(WriterLockHeld, match="refusing to start a second writer"):
            WriterLock(settings, "KEY-A").acquire()
        with WriterLock(settings, "KEY-B"):  # another key is another writer
            pass
    with WriterLock(settings, "KEY-A"):  # released: a standby can take over
        pass


def test_lock_names_never_contain_the_key(settings):
    lock = WriterLock(settings, "SECRETKEYVALUE")
    assert "SECRETKEYVALUE" not in lock.name and key_fingerprint("SECRETKEYVALUE") in lock.name
