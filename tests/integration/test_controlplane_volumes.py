"""Volume services against a real engine: create labelled with the team, list, use in run, remove, prune."""

from __future__ import annotations

import docker.errors
import pytest

from tests.unit.dockweb.support import flush_database, setup_django

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402

from dockweb.accounts.models import Membership, Team  # noqa: E402
from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402
from dockweb.volumes import services  # noqa: E402
from dockweb.volumes.models import Volume  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture
def world(engine):
    try:
        engine.client().api.volumes()
    except docker.errors.NotFound:
        pytest.skip("this engine does not serve /volumes yet (the volumes issue adds it)")
    Host.objects.create(name="local", engine_url=engine.base_url)
    User = get_user_model()
    red = Team.objects.create(name="Red", slug="red")
    olga = User.objects.create_user("olga")
    Membership.objects.create(user=olga, team=red, role="admin")
    bob = User.objects.create_user("bob")
    Membership.objects.create(user=bob, team=Team.objects.create(name="Blue", slug="blue"), role="admin")
    try:
        yield olga, bob
    finally:
        client = engine.client()
        for c in client.containers.list(all=True):
            c.remove(force=True)
        for v in client.volumes.list():
            v.remove(force=True)
        engine_clients.close_clients()
        flush_database()


def test_create_list_remove_a_team_volume(world, engine):
    olga, bob = world
    vol = services.create_volume(olga, "red-data", "red")
    assert vol.team.slug == "red"
    assert engine.client().api.inspect_volume("red-data")["Labels"] == {"dockweb.team": "red"}
    assert [v.name for v in services.list_volumes(olga)] == ["red-data"]
    assert list(services.list_volumes(bob)) == []
    services.remove_volume(olga, "red-data")
    assert not Volume.objects.exists()
    with pytest.raises(docker.errors.NotFound):
        engine.client().api.inspect_volume("red-data")


def test_prune_for_a_team_leaves_other_volumes(world, engine):
    olga, _ = world
    services.create_volume(olga, "red-scratch", "red")
    engine.client().api.create_volume("cli-made")
    assert services.prune_volumes(olga, "red")["VolumesDeleted"] in (None, [])  # named ones stay, as docker's
    result = services.prune_volumes(olga, "red", named=True)
    assert result["VolumesDeleted"] == ["red-scratch"]
    assert [v["Name"] for v in engine.client().api.volumes()["Volumes"]] == ["cli-made"]


def test_run_mounts_the_teams_volume_but_not_another_teams(world, engine):
    from django.core.exceptions import ValidationError

    from dockweb.containers import services as containers
    from dockweb.containers.runspec import parse_run_input

    olga, bob = world
    services.create_volume(olga, "red-data", "red")
    services.create_volume(bob, "blue-data", "blue")
    c = containers.run_container(olga, parse_run_input({"image": "busybox", "team": "red", "name": "uses-vol",
                                                        "command": "sleep 300", "volumes": "red-data:/data"}))
    mounts = engine.client().api.inspect_container(c.engine_id)["Mounts"]
    assert [(m["Name"], m["Destination"]) for m in mounts] == [("red-data", "/data")]
    with pytest.raises(ValidationError, match="blue-data: no such volume of your team"):
        containers.run_container(olga, parse_run_input({"image": "busybox", "team": "red",
                                                        "volumes": "blue-data:/data"}))
