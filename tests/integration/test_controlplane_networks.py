"""Network services against a real engine: create for a team, connect and disconnect, events sync, remove."""

from __future__ import annotations

import pytest

from tests.integration.polling import wait_for
from tests.unit.dockweb.support import flush_database, setup_django

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.exceptions import PermissionDenied, ValidationError  # noqa: E402
from django.http import Http404  # noqa: E402
from django.test import Client  # noqa: E402

from dockweb.accounts.models import Membership, Team  # noqa: E402
from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.core.errors import EngineConflict  # noqa: E402
from dockweb.core.reconcile import reconcile_host  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402
from dockweb.networks import services  # noqa: E402
from dockweb.networks.models import Network  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture
def world(engine):
    host = Host.objects.create(name="local", engine_url=engine.base_url)
    User = get_user_model()
    red = Team.objects.create(name="Red", slug="red")
    olga = User.objects.create_user("olga", password="pw-olga-1")
    Membership.objects.create(user=olga, team=red, role="operator")
    bob = User.objects.create_user("bob", password="pw-bob-1")
    Membership.objects.create(user=bob, team=Team.objects.create(name="Blue", slug="blue"), role="admin")
    engine.docker("run", "-d", "--name", "red-web", "--label", "dockweb.team=red", "busybox", "sleep", "300")
    reconcile_host(host)
    try:
        yield host, olga, bob
    finally:
        client = engine.client()
        for c in client.containers.list(all=True):
            c.remove(force=True)
        for n in client.networks.list():
            if n.name not in ("bridge", "host", "none"):
                n.remove()
        engine_clients.close_clients()
        flush_database()


def test_a_team_network_connects_a_container_and_shows_its_address(world, engine):
    host, olga, bob = world
    net = services.create_network(olga, "red-net", "red", subnet="10.77.0.0/24", gateway="10.77.0.1")
    assert net.team.slug == "red" and net.subnet == "10.77.0.0/24" and net.labels["dockweb.team"] == "red"
    net = services.connect(olga, "red-net", "red-web", aliases=["web"])
    assert [e["name"] for e in net.endpoints] == ["red-web"]
    assert net.endpoints[0]["ipv4"].startswith("10.77.0.")
    out = engine.docker("exec", "red-web", "ip", "-4", "addr").stdout
    assert "10.77.0." in out
    with pytest.raises(EngineConflict):
        services.remove_network(olga, "red-net")          # a container still uses it: Docker's 409
    net = services.disconnect(olga, "red-net", "red-web")
    assert net.endpoints == []
    services.remove_network(olga, "red-net")
    assert not Network.objects.filter(name="red-net").exists()
    assert "red-net" not in engine.docker("network", "ls", "--format", "{{.Name}}").stdout


def test_another_team_cannot_see_or_use_the_network(world):
    host, olga, bob = world
    services.create_network(olga, "red-net", "red")
    with pytest.raises(Http404):
        services.get_network(bob, "red-net")
    with pytest.raises(Http404):
        services.connect(bob, "red-net", "red-web")
    web = Client()
    assert web.login(username="bob", password="pw-bob-1")
    assert web.get("/networks/red-net/").status_code == 404
    assert web.post("/networks/red-net/remove/").status_code == 404


def test_predefined_networks_are_shared_but_not_removable(world):
    host, olga, bob = world
    bridge = services.get_network(bob, "bridge")
    assert bridge.team is None and bridge.predefined
    with pytest.raises(PermissionDenied):
        services.remove_network(olga, "bridge")


def test_bad_input_is_a_field_error(world):
    _, olga, _ = world
    with pytest.raises(ValidationError) as e:
        services.create_network(olga, "x y", "red", subnet="10.0.0.0/33", gateway="10.1.0.1")
    assert set(e.value.message_dict) == {"name", "subnet"}
    with pytest.raises(ValidationError) as e:
        services.create_network(olga, "ok-net", "red", subnet="10.5.0.0/24", gateway="10.6.0.1")
    assert "gateway" in e.value.message_dict


def test_a_network_made_with_the_cli_appears_after_its_event(world, engine):
    host, _, _ = world
    from dockweb.core.events import HostListener

    listener = HostListener(host.pk)
    listener.start()
    try:
        engine.docker("network", "create", "cli-net")
        assert wait_for(lambda: Network.objects.filter(name="cli-net").exists(), timeout=10), \
            "the network created with the docker CLI never appeared"
        engine.docker("network", "rm", "cli-net")
        assert wait_for(lambda: not Network.objects.filter(name="cli-net").exists(), timeout=10), \
            "the removed network never disappeared"
    finally:
        listener.stop()
