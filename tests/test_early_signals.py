"""``execledger run`` and ``execledger simulator`` take SIGINT/SIGTERM from the first moment, with real processes.

The hostile tester's finding: a process started with ``&`` from a script inherits SIGINT as ignored, and a SIGINT
sent in its first second was lost: the service went on to trade until a second signal came. Each test starts the
real command with the inherited state a script gives it, signals it as soon as it can (at once, or as soon as the
kernel shows the process catching SIGINT, which before the fix happened only after the imports and the start-up
checks), and checks it stops cleanly, exit 0, having started nothing: no API, no simulator, no ledger.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time

import pytest

from execledger.infrastructure.cli.early import service_command
from tests.faults.harness import EXECLEDGER, free_port

SECRET = base64.b64encode(b"s" * 64).decode()


def catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for ``signum`` now (``SigCgt`` in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except FileNotFoundError:
        pass
    return False


def start(argv: list[str], env: dict[str, str], *, blocked: bool) -> subprocess.Popen:
    def as_a_script_starts_it() -> None:  # `execledger run &` in a script: SIGINT ignored (and here maybe blocked)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    return subprocess.Popen(
        [EXECLEDGER, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=as_a_script_starts_it,
    )


def wait_until_it_catches(proc: subprocess.Popen, signum: int, timeout: float = 60.0) -> None:
    """The earliest moment a signal can be taken at all: the kernel drops a signal while it is ignored. Polls the
    kernel's view of the process (no fixed sleep); a bound only for a broken process."""
    deadline = time.monotonic() + timeout
    while not catches(proc.pid, signum):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the process never installed a handler"
        time.sleep(0.001)


COMMANDS = {
    "run": (["run"], "execledger running", "execledger stopped"),
    "simulator": (
        ["simulator", "--port", "0", "--key", "k", "--secret", SECRET],
        "Kraken simulator: REST",
        "simulator stopped",
    ),
}


@pytest.mark.parametrize("blocked", [False, True], ids=["ignored", "ignored and blocked"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_sigint_at_start_up_stops_the_service_before_it_starts_anything(tmp_path, command, blocked):
    argv, started, stopped = COMMANDS[command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
    env |= {"EXECLEDGER_DATA_DIR": str(tmp_path / "data"), "EXECLEDGER_API_PORT": str(free_port())}
    proc = start(argv, env, blocked=blocked)
    try:
        if not blocked:  # a blocked signal stays pending: it can be sent at once
            wait_until_it_catches(proc, signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert f"{stopped} (SIGINT)" in err and started not in err, err
    assert not (tmp_path / "data").exists()  # no ledger, no writer lock


def test_a_sigterm_at_start_up_stops_it_cleanly_instead_of_killing_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECLEDGER_")}
    env |= {"EXECLEDGER_DATA_DIR": str(tmp_path / "data"), "EXECLEDGER_API_PORT": str(free_port())}
    proc = start(["run"], env, blocked=False)
    try:
        wait_until_it_catches(proc, signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and "execledger stopped (SIGTERM)" in err, (proc.returncode, err)


def test_only_the_service_commands_take_signals_early():
    assert service_command(["/x/.venv/bin/execledger", "run", "--role", "api"]) == "run"
    assert service_command(["execledger", "--config", "run", "simulator"]) == "simulator"  # "run" is the file
    assert service_command(["execledger", "--config=f", "run"]) == "run"
    for argv in (["execledger", "report"], ["execledger", "--help"], ["pytest", "-k", "run"], ["execledger"], []):
        assert service_command(argv) is None, argv


if sys.platform != "linux":  # pragma: no cover - /proc and signal masks as on Linux
    pytestmark = pytest.mark.skip("process tests assume Linux")
