"""Models follow the engine: reconcile repairs drift, events update rows, ownership comes from the team label."""

from __future__ import annotations

from dockweb.accounts.models import Team
from dockweb.containers.models import Container
from dockweb.core.events import handle_event, host_group
from dockweb.core.reconcile import reconcile_host
from dockweb.hosts.models import Host
from dockweb.images.models import Image
from dockweb.volumes.models import Volume


def test_reconcile_adds_updates_and_removes(db, fake_engine):
    host = Host.default()
    keep = fake_engine.add_container("keep")
    gone = fake_engine.add_container("gone")
    reconcile_host(host)
    assert set(Container.objects.values_list("name", flat=True)) == {"keep", "gone"}
    del fake_engine.containers_[gone]
    fake_engine.containers_[keep]["State"]["Status"] = "exited"
    fake_engine.add_container("new")
    drift = reconcile_host(host)["containers"]
    assert (drift.added, drift.updated, drift.removed) == (1, 1, 1)
    assert dict(Container.objects.values_list("name", "state")) == {"keep": "exited", "new": "running"}
    assert reconcile_host(host)["containers"].updated == 0  # nothing drifted: no writes


def test_the_team_label_decides_ownership_and_unknown_teams_leave_it_unassigned(db, fake_engine):
    red = Team.objects.create(name="Red", slug="red")
    fake_engine.add_container("a", {"dockweb.team": "red"})
    fake_engine.add_container("b", {"dockweb.team": "nosuchteam"})
    fake_engine.add_container("c")
    fake_engine.add_volume("v", {"dockweb.team": "red"})
    fake_engine.add_image("red/app:1", {"dockweb.team": "red"})
    reconcile_host(Host.default())
    assert dict(Container.objects.values_list("name", "team")) == {"a": red.pk, "b": None, "c": None}
    assert Volume.objects.get(name="v").team == red
    assert Image.objects.get().team == red


def test_ownership_given_in_the_dashboard_survives_reconcile_when_there_is_no_label(make_user, fake_engine):
    from dockweb.containers import services

    admin = make_user("root", superuser=True)
    red = Team.objects.create(name="Red", slug="red")
    fake_engine.add_container("cli")
    reconcile_host(Host.default())
    services.assign_container(admin, "cli", red)
    reconcile_host(Host.default())
    assert Container.objects.get(name="cli").team == red


def test_a_lost_database_gets_ownership_back_from_the_labels(db, fake_engine):
    red = Team.objects.create(name="Red", slug="red")
    fake_engine.add_container("web", {"dockweb.team": "red"})
    reconcile_host(Host.default())
    Container.objects.all().delete()
    reconcile_host(Host.default())
    assert Container.objects.get(name="web").team == red


def test_events_create_update_and_destroy_rows(db, fake_engine):
    host = Host.default()
    cid = fake_engine.add_container("web")
    handle_event(host, {"Type": "container", "Action": "create", "Actor": {"ID": cid, "Attributes": {}}})
    assert Container.objects.get(engine_id=cid).state == "running"
    fake_engine.containers_[cid]["State"]["Status"] = "exited"
    handle_event(host, {"Type": "container", "Action": "die", "Actor": {"ID": cid}})
    assert Container.objects.get(engine_id=cid).state == "exited"
    handle_event(host, {"Type": "container", "Action": "destroy", "Actor": {"ID": cid}})
    assert not Container.objects.filter(engine_id=cid).exists()


def test_an_event_for_a_container_already_gone_deletes_its_row(db, fake_engine):
    host = Host.default()
    cid = fake_engine.add_container("web")
    reconcile_host(host)
    del fake_engine.containers_[cid]
    handle_event(host, {"Type": "container", "Action": "start", "Actor": {"ID": cid}})
    assert not Container.objects.filter(engine_id=cid).exists()


def test_image_and_volume_events_resync_them(db, fake_engine):
    host = Host.default()
    fake_engine.add_image("busybox:latest")
    handle_event(host, {"Type": "image", "Action": "tag", "Actor": {"ID": "sha256:x"}})
    assert Image.objects.get().tags == ["busybox:latest"]
    fake_engine.add_volume("data")
    handle_event(host, {"Type": "volume", "Action": "create", "Actor": {"ID": "data"}})
    assert Volume.objects.filter(name="data").exists()
    del fake_engine.volumes_["data"]
    handle_event(host, {"Type": "volume", "Action": "destroy", "Actor": {"ID": "data"}})
    assert not Volume.objects.filter(name="data").exists()


def test_events_are_relayed_to_the_hosts_channel_group(db, fake_engine):
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    host = Host.default()
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(host_group(host.pk), channel)
    cid = fake_engine.add_container("web")
    event = {"Type": "container", "Action": "start", "Actor": {"ID": cid}}
    handle_event(host, event)
    assert async_to_sync(layer.receive)(channel) == {"type": "engine.event", "event": event}


def test_a_host_that_cannot_be_reached_is_marked_down(db, monkeypatch):
    import pytest

    from dockweb.core.errors import EngineUnavailable

    host = Host.objects.create(name="far", engine_url="unix:///nonexistent/dockweb-test.sock")
    with pytest.raises(EngineUnavailable, match="cannot reach the engine of host far"):
        reconcile_host(host)
    host.refresh_from_db()
    assert host.health == "down" and "cannot reach" in host.health_message


def test_check_health_records_the_engine_version(db, fake_engine):
    from dockweb.hosts.services import check_health

    host = check_health(Host.default())
    host.refresh_from_db()
    assert (host.health, host.engine_version) == ("up", "fake-1.0")
