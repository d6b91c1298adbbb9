"""The events listener: a container made or removed with the docker CLI shows up in the models within a second."""

from __future__ import annotations

import time

import pytest

from tests.integration.polling import wait_for
from tests.unit.dockweb.support import flush_database, setup_django

setup_django()

from dockweb.containers.models import Container  # noqa: E402
from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.core.events import HostListener  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.requires_docker_cli]


@pytest.fixture
def listener(engine):
    host = Host.objects.create(name="local", engine_url=engine.base_url)
    lst = HostListener(host.pk)
    lst.start()
    try:
        assert lst.ready.wait(15), "the listener did not subscribe and reconcile within 15 s"
        yield host
    finally:
        lst.stop()
        assert not lst.is_alive(), "the listener thread did not stop"
        for c in engine.client().containers.list(all=True):
            c.remove(force=True)
        engine_clients.close_clients()
        flush_database()


def seen_within(predicate, timeout: float) -> float | None:
    """Return how long predicate took to hold, or None if it did not within timeout."""
    start = time.monotonic()
    if wait_for(predicate, timeout=timeout, interval=0.02):
        return time.monotonic() - start
    return None


def test_a_container_created_with_the_cli_appears_within_a_second(listener, engine):
    r = engine.docker("create", "--name", "from-cli", "--label", "dockweb.team=nobody", "busybox", "sleep", "30")
    assert r.returncode == 0, r.stderr
    took = seen_within(lambda: Container.objects.filter(host=listener, name="from-cli").exists(), timeout=5)
    assert took is not None and took < 1.0, f"took {took}"
    c = Container.objects.get(name="from-cli")
    assert (c.state, c.team, c.labels) == ("created", None, {"dockweb.team": "nobody"})
    assert c.engine_id == r.stdout.strip()


def test_start_and_removal_with_the_cli_follow_within_a_second(listener, engine):
    cid = engine.docker("create", "--name", "moving", "busybox", "sleep", "30").stdout.strip()
    assert wait_for(lambda: Container.objects.filter(engine_id=cid).exists(), timeout=5)
    assert engine.docker("start", "moving").returncode == 0
    took = seen_within(lambda: Container.objects.filter(engine_id=cid, state="running").exists(), timeout=5)
    assert took is not None and took < 1.0, f"took {took}"
    assert engine.docker("rm", "-f", "moving").returncode == 0
    took = seen_within(lambda: not Container.objects.filter(engine_id=cid).exists(), timeout=5)
    assert took is not None and took < 1.0, f"took {took}"


def test_the_listener_reconciles_what_happened_before_it_started(engine):
    cid = engine.docker("create", "--name", "earlier", "busybox", "true").stdout.strip()
    host = Host.objects.create(name="local", engine_url=engine.base_url)
    Container.objects.create(host=host, engine_id="f" * 64, name="stale")
    lst = HostListener(host.pk)
    lst.start()
    try:
        assert lst.ready.wait(15)
        assert list(Container.objects.values_list("engine_id", flat=True)) == [cid]
        host.refresh_from_db()
        assert host.health == "up"
    finally:
        lst.stop()
        for c in engine.client().containers.list(all=True):
            c.remove(force=True)
        engine_clients.close_clients()
        flush_database()


def test_a_host_whose_engine_is_away_is_marked_down_and_the_listener_stops_cleanly(tmp_path):
    host = Host.objects.create(name="away", engine_url=f"unix://{tmp_path}/no-engine.sock")
    lst = HostListener(host.pk, max_backoff=0.2)
    lst.start()
    try:
        assert wait_for(lambda: Host.objects.get(pk=host.pk).health == "down", timeout=10)
        assert "cannot reach the engine of host away" in Host.objects.get(pk=host.pk).health_message
    finally:
        lst.stop()
        assert not lst.is_alive()
        flush_database()
