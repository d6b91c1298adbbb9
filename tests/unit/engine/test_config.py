"""EngineConfig: defaults, derived paths, environment overrides and directory creation."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from engine.config import EngineConfig

ENV_VARS = ("DOCKWEB_ENGINE_ROOT", "DOCKWEB_ENGINE_SOCKET", "DOCKWEB_CGROUP_PARENT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_documented_paths():
    config = EngineConfig()
    assert config.root == Path("/var/lib/dockweb")
    assert config.socket == Path("/run/dockweb/engine.sock")
    assert config.socket_mode == 0o660
    assert config.cgroup_parent == "dockweb"
    assert config.default_shm_size == 64 * 1024 * 1024


def test_log_rotation_is_capped_by_default_unlike_docker():
    config = EngineConfig()
    assert 0 < config.log_max_size <= 100 * 1024 * 1024
    assert config.log_max_files >= 1


def test_directories_derive_from_the_root(tmp_path):
    config = EngineConfig(root=tmp_path)
    assert config.containers_dir == tmp_path / "containers"
    assert config.images_dir == tmp_path / "images"
    assert config.volumes_dir == tmp_path / "volumes"
    assert config.tmp_dir == tmp_path / "tmp"
    assert config.run_dir == tmp_path / "run"
    assert config.container_dir("abc") == tmp_path / "containers" / "abc"


def test_ensure_dirs_creates_every_directory_and_locks_the_root(tmp_path):
    config = EngineConfig(root=tmp_path / "engine")
    config.ensure_dirs()
    for d in (config.root, config.containers_dir, config.images_dir, config.volumes_dir, config.tmp_dir,
              config.run_dir):
        assert d.is_dir(), d
    # 0711: other users may traverse to bind-mounted files but not list containers.
    assert stat.S_IMODE(config.root.stat().st_mode) == 0o711


def test_ensure_dirs_twice_is_harmless(tmp_path):
    config = EngineConfig(root=tmp_path / "engine")
    config.ensure_dirs()
    (config.containers_dir / "keep").write_text("x")
    config.ensure_dirs()
    assert (config.containers_dir / "keep").read_text() == "x"


def test_from_env_reads_the_three_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKWEB_ENGINE_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("DOCKWEB_ENGINE_SOCKET", str(tmp_path / "e.sock"))
    monkeypatch.setenv("DOCKWEB_CGROUP_PARENT", "dockweb-test-env")
    config = EngineConfig.from_env()
    assert config.root == tmp_path / "root"
    assert isinstance(config.root, Path)
    assert config.socket == tmp_path / "e.sock"
    assert isinstance(config.socket, Path)
    assert config.cgroup_parent == "dockweb-test-env"


def test_from_env_without_variables_gives_the_defaults():
    assert EngineConfig.from_env() == EngineConfig()


def test_from_env_ignores_empty_variables(monkeypatch):
    monkeypatch.setenv("DOCKWEB_ENGINE_ROOT", "")
    monkeypatch.setenv("DOCKWEB_CGROUP_PARENT", "")
    config = EngineConfig.from_env()
    assert config.root == Path("/var/lib/dockweb")
    assert config.cgroup_parent == "dockweb"


def test_explicit_overrides_beat_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKWEB_ENGINE_ROOT", "/from/env")
    monkeypatch.setenv("DOCKWEB_CGROUP_PARENT", "from-env")
    config = EngineConfig.from_env(root=tmp_path, cgroup_parent="from-flag")
    assert config.root == tmp_path
    assert config.cgroup_parent == "from-flag"


def test_none_overrides_leave_the_environment_value(monkeypatch):
    # The CLI passes every flag, None when it was not given.
    monkeypatch.setenv("DOCKWEB_ENGINE_ROOT", "/from/env")
    config = EngineConfig.from_env(root=None, socket=None, cgroup_parent=None)
    assert config.root == Path("/from/env")
    assert config.socket == Path("/run/dockweb/engine.sock")


def test_config_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        EngineConfig().root = Path("/elsewhere")  # type: ignore[misc]


def test_unknown_override_is_refused():
    with pytest.raises(TypeError):
        EngineConfig.from_env(no_such_option=1)
