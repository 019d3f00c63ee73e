"""The persistent nonce: strictly increasing across calls, restarts, a clock set back, and processes."""

import itertools
import multiprocessing
import os
import stat

from execledger.infrastructure.kraken.nonce import PersistentNonce, nonce_path


def test_strictly_increasing_even_with_a_frozen_clock(tmp_path):
    nonce = PersistentNonce(tmp_path / "n", clock=lambda: 5_000)
    values = [nonce.next() for _ in range(5)]
    assert values == [5_000, 5_001, 5_002, 5_003, 5_004]


def test_a_restart_with_the_clock_set_back_continues_upwards(tmp_path):
    first = PersistentNonce(tmp_path / "n", clock=lambda: 9_000_000)
    issued = first.next()
    restarted = PersistentNonce(tmp_path / "n", clock=lambda: 1_000)  # new process, clock an hour behind
    assert restarted.next() > issued


def test_follows_the_clock_when_it_is_ahead(tmp_path):
    now = [100]
    nonce = PersistentNonce(tmp_path / "n", clock=lambda: now[0])
    assert nonce.next() == 100
    now[0] = 10_000
    assert nonce.next() == 10_000


def test_the_value_is_on_disk_before_use_and_the_file_is_private(tmp_path):
    path = tmp_path / "n"
    nonce = PersistentNonce(path, clock=lambda: 42)
    value = nonce.next()
    assert int(path.read_text()) >= value  # the ceiling on disk covers what was issued
    now = [10**9]
    nonce._clock = lambda: now[0]  # the clock leaves the reserved range: a new ceiling is on disk first
    assert nonce.next() == 10**9 and int(path.read_text()) >= 10**9
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0


def test_the_file_name_does_not_contain_the_key(tmp_path):
    path = nonce_path(tmp_path, "MYSECRETISHKEY")
    assert "MYSECRETISHKEY" not in str(path) and path.parent == tmp_path
    assert nonce_path(tmp_path, "A") != nonce_path(tmp_path, "B")


def _issue(path, count, queue):
    nonce = PersistentNonce(path, clock=lambda: 1)  # identical clocks: only the file keeps them apart
    queue.put([nonce.next() for _ in range(count)])


def test_two_processes_never_issue_the_same_nonce(tmp_path):
    path = tmp_path / "shared-nonce"
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_issue, args=(path, 200, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=20) for _ in workers]
    for w in workers:
        w.join(timeout=20)
    issued = results[0] + results[1]
    assert len(set(issued)) == 400
    assert all(b > a for r in results for a, b in itertools.pairwise(r))  # each process sees its own values grow


def test_a_signed_call_costs_an_fsync_about_once_a_second_not_every_time(tmp_path, monkeypatch):
    now = [1_000_000]
    nonce = PersistentNonce(tmp_path / "n", clock=lambda: now[0])
    syncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (syncs.append(fd), real_fsync(fd)))
    for _ in range(100):  # 100 calls within 0.1 s
        nonce.next()
        now[0] += 1_000
    assert len(syncs) == 1
    now[0] += 2_000_000  # two seconds later
    nonce.next()
    assert len(syncs) == 2


def test_after_another_process_went_ahead_an_invalidated_nonce_continues_above_it(tmp_path):
    mine = PersistentNonce(tmp_path / "n", clock=lambda: 5_000)
    first = mine.next()
    other = PersistentNonce(tmp_path / "n", clock=lambda: 5_000)
    theirs = other.next()
    assert theirs > first + mine.reserve_us - 1  # disjoint ranges: theirs starts above my ceiling
    assert mine.next() < theirs  # still in my range: Kraken would refuse it as not above theirs...
    mine.invalidate()  # ...so the REST client invalidates on EAPI:Invalid nonce
    assert mine.next() > other._ceiling
