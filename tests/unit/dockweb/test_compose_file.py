"""docker-compose.dev.yml is valid and describes the central services (web, worker, beat, redis, postgres)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.unit.dockweb.support import REPO

COMPOSE = REPO / "docker-compose.dev.yml"


def test_the_compose_file_passes_docker_compose_config():
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (./dockweb.sh test installs it)")
    r = subprocess.run([tool, "-f", str(COMPOSE), "config", "-q"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


def test_the_compose_file_runs_every_central_service_on_postgres_and_redis():
    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    assert {"web", "worker", "beat", "redis", "postgres"} <= set(services)
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://redis:")
        assert "/run/dockweb:/run/dockweb" in services[name]["volumes"]
    assert "daphne" in services["web"]["command"] and "dockweb.asgi:application" in services["web"]["command"]
    assert "DatabaseScheduler" in services["beat"]["command"]
    assert "host.local" in services["worker"]["command"]
