"""Packaging: the compose file validates and runs every role with health checks, the Dockerfile builds from what
the repository has, the systemd unit runs one role per instance, and the roles without the API serve probes."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml

from execledger.infrastructure.runner import Role
from tests.faults.harness import free_port
from tests.test_runner import start

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def compose_cli() -> list[str] | None:
    """``docker compose`` (v2) or ``docker-compose`` (v1), whichever is installed."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_file_runs_every_role_on_postgres_with_health_checks():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"postgres", "trading", "projections", "api"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for role in ("trading", "projections", "api"):
        s = services[role]
        assert s["command"] == ["run", "--role", role]
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert s["environment"]["EXECLEDGER_DATABASE_URL"].startswith("postgresql://")
        probe = " ".join(s["healthcheck"]["test"])
        assert "/v1/health/" in probe
    assert services["trading"]["secrets"] == ["kraken_secret"]
    assert services["trading"]["environment"]["EXECLEDGER_KRAKEN_SECRET_FILE"] == "/run/secrets/kraken_secret"
    assert services["api"]["ports"] == ["127.0.0.1:8080:8080"]  # the host sees the API on loopback only
    text = (DEPLOY / "compose.yaml").read_text()
    assert "EXECLEDGER_KRAKEN_SECRET=" not in text and "EXECLEDGER_API_TOKEN=" not in text


def test_compose_config_validates(tmp_path):
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (the structure is checked above)")
    work = tmp_path / "deploy"
    shutil.copytree(DEPLOY, work)
    (work / "execledger.env").write_text((DEPLOY / "execledger.env.example").read_text())
    (work / "kraken_secret").write_text("c2VjcmV0")
    proc = subprocess.run(
        [*cli, "-f", str(work / "compose.yaml"), "config"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    resolved = yaml.safe_load(proc.stdout)
    assert set(resolved["services"]) == {"postgres", "trading", "projections", "api"}
    assert resolved["services"]["api"]["healthcheck"]["retries"] == 3


def test_dockerfile_copies_only_what_exists_and_runs_unprivileged():
    text = (DEPLOY / "Dockerfile").read_text()
    sources = [line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line]
    for source in sources:
        for name in source.split():
            assert (REPO / name).exists(), name
    assert "USER execledger" in text and 'ENTRYPOINT ["execledger"]' in text
    assert "deploy/*.env" in (REPO / ".dockerignore").read_text()  # settings with secrets never enter an image


def test_systemd_unit_runs_one_role_per_instance():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string((DEPLOY / "execledger@.service").read_text())
    service = unit["Service"]
    assert service["ExecStart"].endswith("execledger run --role %i")
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2 3"  # bad input or configuration, or another writer
    assert service["NoNewPrivileges"] == "yes" and service["User"] == "execledger"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


async def test_a_role_without_the_api_serves_probes_and_metrics(settings):
    port = free_port()
    stop, task, _running = await start(settings.model_copy(update={"ops_port": port}), role=Role.PROJECTIONS)
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            assert (await http.get(f"{base}/v1/health/live")).status == 200
            health = await (await http.get(f"{base}/v1/health")).json()
            assert health["role"] == "projections" and health["venue"] is None and health["status"] == "ok"
            metrics = await (await http.get(f"{base}/metrics")).text()
            assert "execledger_orders" in metrics and "execledger_projection_lag_events" in metrics
            assert (await http.get(f"{base}/v1/orders")).status == 404  # probes only, no API
    finally:
        stop.set()
        await task
