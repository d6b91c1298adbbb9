"""Debian's docker-compose (docker-py inside) brings a two-service project up and down on the engine."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.root

COMPOSE_FILE = """\
version: "3.8"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1::80"]
    volumes: ["data:/data"]
    stop_grace_period: 1s
  client:
    image: busybox
    command: ["sleep", "300"]
    depends_on: [web]
    stop_grace_period: 1s
volumes:
  data: {}
"""


@pytest.fixture
def compose(engine, tmp_path):
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt install docker-compose)")
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker-compose", "-p", "dwtest", "-f", str(tmp_path / "docker-compose.yml"), *args],
                              env=engine.env, capture_output=True, text=True, timeout=120)
    yield run
    run("down", "-v", "-t", "1")


def test_compose_up_resolves_services_by_name_and_down_removes_everything(engine, compose):
    r = compose("up", "-d")
    assert r.returncode == 0, r.stderr
    nets = json.loads(engine.docker("network", "inspect", "dwtest_default").stdout)
    assert nets[0]["Labels"]["com.docker.compose.network"] == "default"
    assert len(nets[0]["Containers"]) == 2

    # Service names resolve on the project's default network.
    script = "for i in $(seq 50); do wget -q -O - http://web/ && exit 0; sleep 0.1; done; exit 1"
    r = compose("exec", "-T", "client", "sh", "-c", script)
    assert (r.returncode, r.stdout.strip()) == (0, "hello-compose"), r.stderr

    # compose reads the published port back through the API, and it answers.
    r = compose("port", "web", "80")
    assert r.returncode == 0, r.stderr
    host, port = r.stdout.strip().rsplit(":", 1)
    assert host == "127.0.0.1"
    status, body = engine.wait_http("127.0.0.1", int(port))
    assert (status, body.strip()) == (200, b"hello-compose")

    bridge = "dw-" + nets[0]["Id"][:12]
    r = compose("down", "-v", "-t", "1")
    assert r.returncode == 0, r.stderr
    assert engine.docker("ps", "-aq").stdout.strip() == ""
    assert engine.docker("network", "ls", "--format", "{{.Name}}").stdout.split() == ["bridge", "host", "none"]
    assert engine.docker("volume", "ls", "-q").stdout.strip() == ""
    links = subprocess.run(["ip", "-n", engine.netns, "-o", "link"], capture_output=True, text=True).stdout
    assert bridge not in links
