"""The backup permission matrix: every role x every backup REST endpoint and page x red's, blue's, unassigned object.

The rule, written out independently of the code: a site admin may do everything; a member of the owning team may
do what the role allows (viewer: view; operator: + back up, verify, download, restore, delete, edit policies;
admin: + the team's backup settings), else 403; anyone else gets 404, as if the object did not exist (another
team's backups cannot be seen, downloaded or restored); anonymous callers get 401 (API) or the login page.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
from django.test import Client

from tests.unit.dockweb import backup_fakes
from tests.unit.dockweb.support import rolled_back

ROLES = ("site", "red_admin", "red_operator", "red_viewer", "blue_admin", "anonymous")
MEMBERSHIP = {"red_admin": ("red", "admin"), "red_operator": ("red", "operator"),
              "red_viewer": ("red", "viewer"), "blue_admin": ("blue", "admin")}
ALLOWS = {"viewer": {"view"}, "operator": {"view", "operate"}, "admin": {"view", "operate", "admin"}}
OWNERS = {"volume": ("red", "blue", None), "backup": ("red", "blue", None), "policy": ("red", "blue"),
          "team": ("red", "blue")}


@dataclass
class Endpoint:
    kind: str
    method: str
    url: str
    action: str
    ok: int
    data: dict | None = None


API = [
    Endpoint("policy", "get", "/api/backups/policies/{ref}/", "view", 200),
    Endpoint("policy", "patch", "/api/backups/policies/{ref}/", "operate", 200, {"keep_last": 3}),
    Endpoint("policy", "delete", "/api/backups/policies/{ref}/", "operate", 204),
    Endpoint("policy", "post", "/api/backups/policies/{ref}/run/", "operate", 202),
    Endpoint("backup", "get", "/api/backups/{ref}/", "view", 200),
    Endpoint("backup", "delete", "/api/backups/{ref}/", "operate", 204),
    Endpoint("backup", "post", "/api/backups/{ref}/verify/", "operate", 202),
    Endpoint("backup", "post", "/api/backups/{ref}/restore/", "operate", 202, {"volume": "copy-x", "new": True}),
    Endpoint("backup", "get", "/api/backups/{ref}/download/", "operate", 200),
    Endpoint("volume", "post", "/api/backups/volumes/{ref}/run/", "operate", 202),
    Endpoint("volume", "get", "/api/backups/?volume={ref}", "view", 200),
]

PAGES = [
    Endpoint("policy", "get", "/backups/policies/{ref}/", "operate", 200),
    Endpoint("policy", "post", "/backups/policies/{ref}/delete/", "operate", 302),
    Endpoint("policy", "post", "/backups/policies/{ref}/run/", "operate", 302),
    Endpoint("volume", "get", "/backups/volumes/{ref}/", "view", 200),
    Endpoint("volume", "post", "/backups/volumes/{ref}/run/", "operate", 302),
    Endpoint("backup", "post", "/backups/{ref}/verify/", "operate", 302),
    Endpoint("backup", "post", "/backups/{ref}/delete/", "operate", 302),
    Endpoint("backup", "get", "/backups/{ref}/download/", "operate", 200),
    Endpoint("backup", "get", "/backups/{ref}/restore/", "operate", 200),
    Endpoint("backup", "post", "/backups/{ref}/restore/", "operate", 302, {"mode": "new", "volume": "copy-x"}),
    Endpoint("team", "get", "/backups/teams/{ref}/", "admin", 200),
    Endpoint("team", "post", "/backups/teams/{ref}/", "admin", 302, {"timezone": "Europe/Berlin"}),
]


def expected(role: str, owner: str | None, action: str, ok: int, anonymous) -> int:
    if role == "anonymous":
        return anonymous
    if role == "site":
        return ok
    team, team_role = MEMBERSHIP[role]
    if owner != team:
        return 404
    return ok if action in ALLOWS[team_role] else 403


@pytest.fixture
def world(make_user, fake_engine, monkeypatch):
    from dockweb.accounts.models import Team
    from dockweb.backups.models import BackupPolicy, BackupRecord
    from dockweb.core.reconcile import reconcile_host
    from dockweb.hosts.models import Host
    from dockweb.volumes.models import Volume

    engine = backup_fakes.install(monkeypatch)
    users = {"site": make_user("site", superuser=True)}
    for role, (team, team_role) in MEMBERSHIP.items():
        users[role] = make_user(role, teams={team: team_role})
    for owner in OWNERS["volume"]:
        fake_engine.add_volume(f"{owner or 'cli'}-data", {"dockweb.team": owner} if owner else {})
    host = Host.default()
    reconcile_host(host)
    refs: dict = {}
    for owner in OWNERS["backup"]:
        vol = Volume.objects.get(name=f"{owner or 'cli'}-data")
        team = Team.objects.get(slug=owner) if owner else None
        refs["volume", owner] = vol.name
        doc = engine._new(vol.name, b"tar" * 100)
        refs["backup", owner] = str(BackupRecord.objects.create(
            team=team, host=host, volume=vol, volume_name=vol.name, engine_id=doc["Id"], size=300,
            checksum=doc["Checksums"]["Archive"], verified_ok=True).pk)
        if team is not None:
            refs["team", owner] = owner
            refs["policy", owner] = str(BackupPolicy.objects.create(team=team, host=host, name=f"{owner}-nightly",
                                                                    volume=vol, volume_name=vol.name).pk)
    return users, refs, engine


def _run_case(engine, request):
    saved = copy.deepcopy(engine.archives)
    try:
        with rolled_back():
            return request()
    finally:
        engine.archives = saved


@pytest.mark.parametrize("ep", API, ids=[f"{e.method} {e.url}" for e in API])
def test_backup_endpoint_answers_each_role_as_the_matrix_says(world, ep):
    from dockweb.accounts.models import ApiToken

    users, refs, engine = world
    tokens = {role: ApiToken.issue(user, "matrix")[1] for role, user in users.items()}
    got, want = {}, {}
    for role in ROLES:
        for owner in OWNERS[ep.kind]:
            headers = {} if role == "anonymous" else {"HTTP_AUTHORIZATION": f"Bearer {tokens[role]}"}
            url = ep.url.format(ref=refs[ep.kind, owner])
            call = getattr(Client(), ep.method)
            response = _run_case(engine, lambda: call(url, data=ep.data, content_type="application/json", **headers))
            got[role, owner] = response.status_code
            want[role, owner] = expected(role, owner, ep.action, ep.ok, anonymous=401)
    assert got == want


@pytest.mark.parametrize("ep", PAGES, ids=[f"{e.method} {e.url}" for e in PAGES])
def test_backup_page_answers_each_role_as_the_matrix_says(world, ep):
    users, refs, engine = world
    got, want = {}, {}
    for role in ROLES:
        for owner in OWNERS[ep.kind]:
            client = Client()
            if role != "anonymous":
                client.force_login(users[role])
            url = ep.url.format(ref=refs[ep.kind, owner])
            response = _run_case(engine, lambda: getattr(client, ep.method)(url, data=ep.data or {}))
            status = response.status_code
            if status == 302 and response["Location"].startswith("/accounts/login/"):
                status = "login"
            got[role, owner] = status
            want[role, owner] = expected(role, owner, ep.action, ep.ok, anonymous="login")
    assert got == want


def test_lists_show_only_the_teams_backups_and_policies(world):
    users, refs, _ = world

    def ids(role, url):
        client = Client()
        client.force_login(users[role])
        return sorted(str(item["id"]) for item in client.get(url).json()["results"])

    assert ids("red_viewer", "/api/backups/") == [refs["backup", "red"]]
    assert ids("blue_admin", "/api/backups/policies/") == [refs["policy", "blue"]]
    assert ids("site", "/api/backups/") == sorted(refs["backup", o] for o in OWNERS["backup"])
    client = Client()
    client.force_login(users["red_viewer"])
    page = client.get("/backups/").content.decode()
    assert "red-nightly" in page and "blue-nightly" not in page and "Run now" not in page


@pytest.mark.parametrize("role,status", [("red_operator", 201), ("red_viewer", 403), ("blue_admin", 404)])
def test_uploading_an_archive_needs_the_operator_role_on_the_volume(world, role, status):
    from django.core.files.uploadedfile import SimpleUploadedFile

    users, _, engine = world
    client = Client()
    client.force_login(users[role])
    response = client.post("/api/backups/volumes/red-data/upload/?strip=1",
                           {"archive": SimpleUploadedFile("backup.tar", b"tar bytes")})
    assert response.status_code == status
    assert (("upload", "red-data", 1) in engine.calls) == (status == 201)


def test_a_policy_cannot_cover_another_teams_volume(world):
    users, _, _ = world
    client = Client()
    client.force_login(users["red_operator"])
    response = client.post("/api/backups/policies/", {"name": "steal", "team": "red", "volume": "blue-data"},
                           content_type="application/json")
    assert response.status_code == 400
    assert "blue-data: no such volume of team red" in response.json()["volume"][0]
