"""Reconcile against a real engine: rows for vanished containers go, new ones come, changed ones are fixed."""

from __future__ import annotations

import pytest

from tests.unit.dockweb.support import flush_database, setup_django

setup_django()

from dockweb.accounts.models import Team  # noqa: E402
from dockweb.containers.models import Container  # noqa: E402
from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.core.reconcile import reconcile_host  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402
from dockweb.images.models import Image  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.requires_docker_cli]


@pytest.fixture
def host(engine):
    h = Host.objects.create(name="local", engine_url=engine.base_url)
    try:
        yield h
    finally:
        for c in engine.client().containers.list(all=True):
            c.remove(force=True)
        engine_clients.close_clients()
        flush_database()


def test_reconcile_repairs_drift(host, engine):
    red = Team.objects.create(name="Red", slug="red")
    kept = engine.docker("create", "--name", "kept", "--label", "dockweb.team=red", "busybox", "sleep", "30")
    doomed = engine.docker("create", "--name", "doomed", "busybox", "true")
    assert kept.returncode == 0 and doomed.returncode == 0
    drift = reconcile_host(host)
    assert drift["containers"].added == 2
    assert Container.objects.get(name="kept").team == red

    # Drift made behind the dashboard's back: removed, started, created, and a row the engine never had.
    assert engine.docker("rm", "doomed").returncode == 0
    assert engine.docker("start", "kept").returncode == 0
    assert engine.docker("create", "--name", "newcomer", "busybox", "true").returncode == 0
    Container.objects.create(host=host, engine_id="e" * 64, name="phantom", synced_at="2000-01-01T00:00:00Z")

    drift = reconcile_host(host)["containers"]
    assert (drift.added, drift.updated, drift.removed) == (1, 1, 2)
    assert dict(Container.objects.values_list("name", "state")) == {"kept": "running", "newcomer": "created"}
    kept_row = Container.objects.get(name="kept")
    assert kept_row.engine_id == kept.stdout.strip() and kept_row.started_at is not None


def test_reconcile_follows_images_too(host, engine):
    reconcile_host(host)
    assert "busybox:latest" in Image.objects.get(host=host, tags_text__contains=" busybox:latest ").tags
    assert engine.docker("tag", "busybox", "dockweb-test/copy:1").returncode == 0
    reconcile_host(host)
    image = Image.objects.get(host=host, tags_text__contains=" busybox:latest ")
    assert "dockweb-test/copy:1" in image.tags
    assert engine.docker("rmi", "dockweb-test/copy:1").returncode == 0
    reconcile_host(host)
    assert "dockweb-test/copy:1" not in Image.objects.get(pk=image.pk).tags
