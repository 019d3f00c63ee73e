"""The package installs as ``execledger`` only: a user's own ``domain`` package is never shadowed (issue 15)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _build_wheel(out: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("execledger-*.whl")
    return wheel


def test_the_wheel_installs_one_package_beside_a_users_domain_package(tmp_path):
    wheel = _build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
        assert tops == {"execledger", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, tops
        assert "execledger/infrastructure/data/asset_pairs.json" in zf.namelist()

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    # The user's own project, with one of the very common names the design card's folders have.
    (site / "domain").mkdir()
    (site / "domain" / "__init__.py").write_text("WHOSE = 'the user'\n")
    # Dependencies come from the test's own environment; only the wheel is installed into the fresh one.
    (site / "zz_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    version = subprocess.run(
        [str(env_dir / "bin" / "execledger"), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert version.returncode == 0, version.stderr
    assert "execledger, version" in version.stdout
    code = (
        "import domain, execledger.domain.order, execledger.application.engine, execledger.infrastructure.cli;"
        "print(domain.WHOSE); print(execledger.domain.order.__file__)"
    )
    imported = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    whose, where = imported.stdout.splitlines()
    assert whose == "the user"
    assert where.startswith(str(site)), where
