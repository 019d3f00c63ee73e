"""The dependency rule of DESIGN.md, checked with import-linter's contracts in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 kept, 0 broken" in proc.stdout


def test_domain_is_imported_without_io_frameworks():
    """Belt and braces: importing the domain in a fresh interpreter loads no I/O framework."""
    code = (
        "import sys, execledger.domain.order, execledger.domain.signal, execledger.domain.pairs; "
        "bad = [m for m in ('aiohttp', 'sqlalchemy', 'psycopg', 'sqlite3', 'asyncio') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
