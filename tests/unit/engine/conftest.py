"""Fixtures of the engine unit tests. The registry tests' (a module may define its own of the same name):
`fake` a fake registry served in-process, `store` an image store, `registry` a Registry on that store."""

from __future__ import annotations

import pytest

from engine.config import EngineConfig
from engine.registry import Registry
from tests.unit.engine.registry_fake import FakeRegistry
from tests.unit.engine.test_image_harness import make_store


@pytest.fixture
def fake():
    reg = FakeRegistry().serve()
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path)


@pytest.fixture
def registry(tmp_path, store):
    return Registry(EngineConfig(root=tmp_path / "root"), store)
