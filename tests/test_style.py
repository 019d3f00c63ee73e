"""Checked style (issue 15): ruff's lint rules and its formatter hold for the whole tree (config in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUFF = str(Path(sys.executable).with_name("ruff"))


def test_ruff_lint_is_clean():
    proc = subprocess.run(
        [RUFF, "check", "--output-format", "concise", "."], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_applied():
    proc = subprocess.run([RUFF, "format", "--check", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean():
    """Types are checked: strict on the domain and the application, checked on the infrastructure (pyproject.toml)."""
    mypy = str(Path(sys.executable).with_name("mypy"))
    proc = subprocess.run([mypy], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
