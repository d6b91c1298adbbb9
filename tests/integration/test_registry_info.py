"""docker info and docker-py's info() list the insecure registries the engine was configured with."""

from __future__ import annotations

import os
import warnings

import pytest

from tests.integration.daemon_harness import EngineDaemon

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture
def daemon(monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("the engine daemon needs root")
    # The daemon reads its settings from the environment it is started with.
    monkeypatch.setenv("DOCKWEB_INSECURE_REGISTRIES", "registry.lan:5000, 10.20.30.40/16")
    d = EngineDaemon.create(cgroup_prefix="dockweb-test")
    try:
        d.start()
        yield d
    finally:
        problems = d.cleanup()
        if problems:
            warnings.warn(f"engine daemon cleanup in {d.tmp} left: " + "; ".join(problems))


def test_info_lists_the_configured_insecure_registries(daemon):
    config = daemon.client().info()["RegistryConfig"]
    assert config["InsecureRegistryCIDRs"] == ["10.20.0.0/16", "::1/128", "127.0.0.0/8"]
    assert config["IndexConfigs"]["registry.lan:5000"] == {"Name": "registry.lan:5000", "Mirrors": [],
                                                          "Secure": False, "Official": False}
    assert config["IndexConfigs"]["docker.io"]["Secure"] is True

    out = daemon.docker("info")
    assert out.returncode == 0, out.stderr
    listed = out.stdout.split("Insecure Registries:\n", 1)[1].splitlines()
    assert [line.strip() for line in listed[:4]] == ["registry.lan:5000", "10.20.0.0/16", "::1/128", "127.0.0.0/8"]
