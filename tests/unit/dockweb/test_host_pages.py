"""Host pages: every member sees hosts and their health; only site admins add, change and remove them."""

from __future__ import annotations

import pytest
from django.test import Client

from dockweb.core.models import AuditEntry
from dockweb.hosts.models import Host


@pytest.fixture
def users(make_user, fake_engine):
    Host.default()
    return {"site": make_user("site", superuser=True), "vera": make_user("vera", teams={"red": "viewer"}),
            "olga": make_user("olga", teams={"red": "admin"})}


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_a_site_admin_adds_a_host_and_its_engine_is_checked(users):
    response = _client(users["site"]).post("/hosts/", {"name": "build-box", "engine_url": "tcp://10.0.0.5:2375"})
    assert response.status_code == 302 and response["Location"] == "/hosts/build-box/"
    host = Host.objects.get(name="build-box")
    assert host.queue == "host.build-box" and host.health == "up" and host.engine_version == "fake-1.0"
    assert AuditEntry.objects.filter(action="host.create", object_name="build-box", result="ok").exists()


@pytest.mark.parametrize("fields,bad", [
    ({"name": "Build Box", "engine_url": "tcp://h:2375"}, "name"),
    ({"name": "local", "engine_url": "tcp://h:2375"}, "name"),
    ({"name": "b2", "engine_url": "ftp://h"}, "engine_url"),
    ({"name": "b2", "engine_url": "tcp://h"}, "engine_url"),
    ({"name": "b2", "engine_url": "unix://relative.sock"}, "engine_url"),
    ({"name": "b2", "engine_url": "tcp://h:1", "queue": "host.local"}, "queue"),
])
def test_bad_host_fields_are_form_errors(users, fields, bad):
    response = _client(users["site"]).post("/hosts/", fields)
    assert response.status_code == 400
    assert bad in response.context["errors"] and len(response.context["errors"]) == 1
    assert not Host.objects.filter(name="b2").exists()


def test_members_see_hosts_but_cannot_change_them(users):
    vera = _client(users["vera"])
    page = vera.get("/hosts/")
    assert page.status_code == 200 and b"local" in page.content and b"Add a host" not in page.content
    assert vera.get("/hosts/local/").status_code == 200
    assert vera.post("/hosts/", {"name": "x1", "engine_url": "tcp://h:1"}).status_code == 403
    assert vera.post("/hosts/local/", {"engine_url": "tcp://h:1", "queue": ""}).status_code == 403
    assert vera.post("/hosts/local/remove/").status_code == 403
    assert Host.objects.filter(name="local").exclude(engine_url="tcp://h:1").exists()
    assert AuditEntry.objects.filter(action="host.create", result="denied").exists()


def test_a_site_admin_changes_and_removes_a_host(users):
    site = _client(users["site"])
    assert site.post("/hosts/local/", {"engine_url": "unix:///run/other.sock", "queue": "q.other"}).status_code == 302
    host = Host.objects.get(name="local")
    assert host.engine_url == "unix:///run/other.sock" and host.queue == "q.other"
    assert site.post("/hosts/local/check/").status_code == 302
    assert site.post("/hosts/local/remove/").status_code == 302
    assert not Host.objects.filter(name="local").exists()


def test_a_stranger_gets_nothing(make_user, fake_engine):
    Host.default()
    assert Client().get("/hosts/").status_code == 302
    loner = _client(make_user("loner"))
    assert loner.get("/hosts/local/").status_code == 404
