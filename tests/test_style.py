"""Checked style (issue 15): ruff's lint rules and its formatter hold for the whole tree (config in pyproject.toml)."""

import ast
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


MAX_FUNCTION_LINES = 50


def test_no_function_over_50_lines_in_domain_and_application():
    """The model and the use cases read as short, named steps: every function (``def`` line to last line) in
    ``domain/`` and ``application/`` fits in 50 lines."""
    offenders = []
    for layer in ("domain", "application"):
        for path in sorted((REPO / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}() is {length} lines")
    assert offenders == [], "\n".join(offenders)
