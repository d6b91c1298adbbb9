"""Container services and the REST API against a real engine daemon: run, list, logs tail, stop, remove."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.integration.polling import wait_for
from tests.unit.dockweb.support import flush_database, setup_django

setup_django()

from dockweb.accounts.models import ApiToken  # noqa: E402
from dockweb.containers import services  # noqa: E402
from dockweb.containers.models import Container  # noqa: E402
from dockweb.containers.runspec import parse_run_input  # noqa: E402
from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.core.reconcile import reconcile_host  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture
def world(engine):
    """A host on the test engine, and users: site admin, red operator, red viewer, blue admin."""
    from django.contrib.auth import get_user_model

    from dockweb.accounts.models import Membership, Team

    host = Host.objects.create(name="local", engine_url=engine.base_url)
    User = get_user_model()
    users = {"site": User.objects.create_user("site", is_superuser=True)}
    for name, team, role in (("olga", "red", "operator"), ("vera", "red", "viewer"), ("bob", "blue", "admin")):
        t, _ = Team.objects.get_or_create(slug=team, defaults={"name": team})
        users[name] = User.objects.create_user(name)
        Membership.objects.create(user=users[name], team=t, role=role)
    try:
        yield host, users
    finally:
        for c in engine.client().containers.list(all=True):
            c.remove(force=True)
        engine_clients.close_clients()
        flush_database()


def test_run_list_logs_stop_and_remove_through_the_services(world, engine):
    host, users = world
    spec = parse_run_input({"image": "busybox", "name": "svc-web", "team": "red",
                            "command": "sh -c 'echo hello; echo second; exec sleep 300'", "env": "GREETING=hi",
                            "labels": "tier=web", "memory": "64m", "pids_limit": "50"})
    c = services.run_container(users["olga"], spec)
    assert (c.name, c.state, c.team.slug, c.host) == ("svc-web", "running", "red", host)

    attrs = engine.client().api.inspect_container("svc-web")
    assert attrs["Config"]["Labels"] == {"dockweb.team": "red", "tier": "web"}
    assert attrs["HostConfig"]["Memory"] == 64 * 2 ** 20 and attrs["HostConfig"]["PidsLimit"] == 50

    assert [x.name for x in services.list_containers(users["vera"])] == ["svc-web"]
    assert [x.name for x in services.list_containers(users["bob"])] == []
    assert wait_for(lambda: services.container_logs(users["vera"], "svc-web", tail=1) == "second\n", timeout=10)
    assert services.container_logs(users["vera"], "svc-web", tail=None) == "hello\nsecond\n"

    stopped = services.stop_container(users["olga"], "svc-web", timeout=1)
    assert stopped.state == "exited" and stopped.exit_code == 137
    assert engine.client().api.inspect_container("svc-web")["State"]["Status"] == "exited"

    services.remove_container(users["olga"], c.engine_id[:12])
    assert not Container.objects.filter(name="svc-web").exists()
    assert engine.client().containers.list(all=True) == []


def test_the_engines_own_refusal_reaches_the_caller(world, engine):
    from dockweb.core.errors import EngineError

    _, users = world
    with pytest.raises(EngineError) as info:
        services.run_container(users["olga"], parse_run_input({"image": "dockweb-test/none:1", "team": "red"}))
    assert "dockweb-test/none" in info.value.message
    assert info.value.status == 404


def test_the_rest_api_runs_stops_and_removes_with_a_personal_token(world, engine):
    _, users = world
    _, operator = ApiToken.issue(users["olga"], "it")
    _, viewer = ApiToken.issue(users["vera"], "it")

    def api(method, url, raw, data=None):
        return getattr(Client(), method)(url, data, content_type="application/json",
                                         HTTP_AUTHORIZATION=f"Bearer {raw}")

    r = api("post", "/api/containers/", operator, {"image": "busybox", "name": "api-web", "team": "red",
                                                   "command": ["sleep", "300"]})
    assert r.status_code == 201, r.content
    assert r.json()["state"] == "running" and r.json()["team"] == "red"
    assert api("get", "/api/containers/?state=running", viewer).json()["count"] == 1
    assert api("post", "/api/containers/api-web/stop/", viewer, {"timeout": 1}).status_code == 403
    r = api("post", "/api/containers/api-web/stop/", operator, {"timeout": 1})
    assert r.status_code == 200 and r.json()["state"] == "exited"
    assert api("get", "/api/containers/api-web/logs/?tail=5", viewer).json() == {"logs": ""}
    assert api("delete", "/api/containers/api-web/", operator).status_code == 204
    assert engine.client().containers.list(all=True) == []
    r = api("delete", "/api/containers/api-web/", operator)
    assert r.status_code == 404


def test_a_container_made_with_the_docker_cli_is_unassigned_and_seen_by_site_admins_only(world, engine):
    host, users = world
    r = engine.docker("create", "--name", "cli-made", "busybox", "true")
    assert r.returncode == 0, r.stderr
    reconcile_host(host)
    c = Container.objects.get(name="cli-made")
    assert c.team is None
    assert [x.name for x in services.list_containers(users["site"])] == ["cli-made"]
    for name in ("olga", "vera", "bob"):
        assert list(services.list_containers(users[name])) == []
    client = Client()
    client.force_login(users["olga"])
    assert client.get(f"/containers/{c.engine_id}/").status_code == 404
    client.force_login(users["site"])
    page = client.get(f"/containers/{c.engine_id}/")
    assert page.status_code == 200 and b"cli-made" in page.content


def test_overview_disk_usage_and_recent_events_from_the_engine(world, engine):
    from dockweb.core import services as core

    host, users = world
    services.run_container(users["olga"], parse_run_input({"image": "busybox", "name": "seen", "team": "red",
                                                           "command": "sleep 300"}))
    assert engine.docker("create", "--name", "unseen", "busybox", "true").returncode == 0
    reconcile_host(host)
    usage = core.disk_usage(users["vera"], "local")
    assert usage["images"]["count"] >= 1 and usage["images"]["size"] > 0
    assert set(usage) == {"images", "containers", "volumes"}  # this engine's df lists no containers yet
    names = {(e.get("Actor") or {}).get("Attributes", {}).get("name") for e in core.recent_events(users["vera"],
                                                                                                "local")}
    assert "seen" in names and "unseen" not in names
    admin_names = {(e.get("Actor") or {}).get("Attributes", {}).get("name")
                   for e in core.recent_events(users["site"], "local")}
    assert {"seen", "unseen"} <= admin_names
    assert core.overview(users["vera"])["counts"] == {"containers": 1, "running": 1, "images": 1, "volumes": 0}
