"""The real docker CLI (28.2.2) talks to the API server: version, info, errors it prints, 304 it accepts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.api.routes import load_routes
from engine.errors import Conflict, NoSuchContainer, NotModified
from tests.unit.engine.test_api_harness import running_server

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
pytestmark = pytest.mark.skipif(not Path(DOCKER).exists(), reason="the docker CLI is not installed")


def remove(engine, req, ref):
    raise Conflict(f'cannot remove container "/{ref}": container is running: stop the container before '
                   "removing or force remove")


def kill(engine, req, ref):
    raise NoSuchContainer(ref)


def stop(engine, req, ref):
    raise NotModified()


FAKE_ROUTES = [
    ("DELETE", r"/containers/(?P<ref>[^/]+)", remove),
    ("POST", r"/containers/(?P<ref>[^/]+)/kill", kill),
    ("POST", r"/containers/(?P<ref>[^/]+)/stop", stop),
]


@pytest.fixture
def cli(tmp_path):
    routes = FAKE_ROUTES + load_routes(("system",)).routes
    with running_server(tmp_path, routes) as srv:
        (tmp_path / "docker-config").mkdir()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
               "DOCKER_HOST": f"unix://{srv.socket_path}", "DOCKER_CONFIG": str(tmp_path / "docker-config")}

        def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
            return subprocess.run([DOCKER, *args], env={**env, **extra_env}, capture_output=True, text=True,
                                  timeout=30)
        run.server = srv
        yield run


def test_docker_version_shows_the_engine(cli):
    r = cli("version")
    assert r.returncode == 0, r.stderr
    assert "Server: dockweb Engine" in r.stdout
    assert "API version:      1.50 (minimum version 1.24)" in r.stdout


def test_docker_version_format_reads_the_server_api_version(cli):
    r = cli("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}")
    assert (r.returncode, r.stdout.strip()) == (0, "1.50 1.50")


def test_docker_info_shows_counts_and_host_facts(cli):
    r = cli("info")
    assert r.returncode == 0, r.stderr
    assert "Containers: 3" in r.stdout and "Running: 1" in r.stdout
    assert "Storage Driver: overlay2" in r.stdout
    assert "Default Runtime: dockweb" in r.stdout
    assert f"Docker Root Dir: {cli.server.engine.config.root}" in r.stdout


def test_not_found_message_reaches_the_user(cli):
    r = cli("kill", "nosuch")
    assert r.returncode == 1
    assert "Error response from daemon: No such container: nosuch" in r.stderr


def test_conflict_message_reaches_the_user(cli):
    r = cli("rm", "web")
    assert r.returncode == 1
    assert 'Error response from daemon: cannot remove container "/web": container is running' in r.stderr


def test_not_modified_is_success_for_stop(cli):
    r = cli("stop", "web")
    assert (r.returncode, r.stdout.strip()) == (0, "web"), r.stderr


def test_too_new_api_version_is_refused_with_dockerds_message(cli):
    r = cli("info", DOCKER_API_VERSION="1.52")
    assert "client version 1.52 is too new. Maximum supported API version is 1.50" in r.stderr + r.stdout


def test_inspect_unknown_object_falls_through_every_kind(cli):
    r = cli("inspect", "nosuch")
    assert r.returncode == 1
    assert "No such object: nosuch" in r.stderr


def test_docker_events_prints_buffered_events_and_ends(cli):
    ev = cli.server.engine.events.publish("container", "start", "c" * 64, {"name": "web", "image": "busybox"})
    # The CLI sends until=<now> in whole seconds and dockerd drops events after it: age the event past that.
    ev.time_ns -= 2_000_000_000
    r = cli("events", "--since", "1m", "--until", "0s", "--filter", "type=container")
    assert r.returncode == 0, r.stderr
    assert f"container start {'c' * 64} (image=busybox, name=web)" in r.stdout
