"""The object-level permission matrix: every role x every REST endpoint and page x own / other / unassigned object.

Roles (relative to team red): site admin, red admin, red operator, red viewer, blue admin (another team), anonymous.
Objects: red's, blue's, and unassigned (made with the docker CLI; images: shared base images).
The rule written out here, independently of the code: a site admin may do everything; a member of the owning team
may do what the role allows (viewer: view/logs; operator: + lifecycle; admin: + manage), else 403; anyone else gets
404, as if the object did not exist; anonymous callers get 401 (API) or the login page (pages). Every team member may
view a shared image but not change it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
from django.test import Client

from dockweb.core.models import Job
from dockweb.hosts.models import Host
from tests.unit.dockweb.support import rolled_back

ROLES = ("site", "red_admin", "red_operator", "red_viewer", "blue_admin", "anonymous")
MEMBERSHIP = {"red_admin": ("red", "admin"), "red_operator": ("red", "operator"),
              "red_viewer": ("red", "viewer"), "blue_admin": ("blue", "admin")}
ALLOWS = {"viewer": {"view", "logs"}, "operator": {"view", "logs", "operate"},
          "admin": {"view", "logs", "operate", "admin"}}
OWNERS = ("red", "blue", None)


@dataclass
class Endpoint:
    kind: str        # container, image, volume, job
    method: str
    url: str         # with {ref}
    action: str      # view, logs, operate
    ok: int          # status when allowed
    data: dict | None = None


API = [
    Endpoint("container", "get", "/api/containers/{ref}/", "view", 200),
    Endpoint("container", "get", "/api/containers/{ref}/logs/", "logs", 200),
    Endpoint("container", "get", "/api/containers/{ref}/inspect/", "view", 200),
    Endpoint("container", "post", "/api/containers/{ref}/start/", "operate", 200),
    Endpoint("container", "post", "/api/containers/{ref}/stop/", "operate", 200),
    Endpoint("container", "post", "/api/containers/{ref}/restart/", "operate", 200),
    Endpoint("container", "post", "/api/containers/{ref}/kill/", "operate", 200),
    Endpoint("container", "delete", "/api/containers/{ref}/", "operate", 204),
    Endpoint("container", "post", "/api/containers/bulk/", "operate", 202, {"action": "stop", "refs": ["{ref}"]}),
    Endpoint("image", "get", "/api/images/{ref}/", "view", 200),
    Endpoint("image", "get", "/api/images/{ref}/history/", "view", 200),
    Endpoint("image", "get", "/api/images/{ref}/inspect/", "view", 200),
    Endpoint("image", "post", "/api/images/{ref}/tag/", "operate", 200, {"repo": "copy", "tag": "1"}),
    Endpoint("image", "delete", "/api/images/{ref}/", "operate", 204),
    Endpoint("volume", "get", "/api/volumes/{ref}/", "view", 200),
    Endpoint("volume", "get", "/api/volumes/{ref}/inspect/", "view", 200),
    Endpoint("volume", "delete", "/api/volumes/{ref}/", "operate", 204),
    Endpoint("network", "get", "/api/networks/{ref}/", "view", 200),
    Endpoint("network", "get", "/api/networks/{ref}/inspect/", "view", 200),
    Endpoint("network", "delete", "/api/networks/{ref}/", "operate", 204),
    Endpoint("job", "get", "/api/jobs/{ref}/", "view", 200),
]

PAGES = [
    Endpoint("container", "get", "/containers/{ref}/", "view", 200),
    Endpoint("container", "get", "/containers/{ref}/logs.txt", "logs", 200),
    Endpoint("container", "post", "/containers/{ref}/stop/", "operate", 302),
    Endpoint("container", "post", "/containers/{ref}/remove/", "operate", 302),
    Endpoint("image", "get", "/images/{ref}/", "view", 200),
    Endpoint("image", "post", "/images/{ref}/tag/", "operate", 302, {"repo": "copy", "tag": "1"}),
    Endpoint("image", "post", "/images/{ref}/remove/", "operate", 302),
    Endpoint("volume", "get", "/volumes/{ref}/", "view", 200),
    Endpoint("volume", "get", "/volumes/{ref}/files/?path=/", "view", 200),
    Endpoint("volume", "post", "/volumes/{ref}/remove/", "operate", 302),
    Endpoint("network", "get", "/networks/{ref}/", "view", 200),
    Endpoint("network", "post", "/networks/{ref}/remove/", "operate", 302),
    Endpoint("job", "get", "/jobs/{ref}/", "view", 200),
]


def expected(role: str, owner: str | None, kind: str, action: str, ok: int, anonymous: int) -> int:
    if role == "anonymous":
        return anonymous
    if role == "site":
        return ok
    team, team_role = MEMBERSHIP[role]
    if owner is None:
        # Unassigned images and networks are shared read-only with every team member.
        shared = kind in ("image", "network")
        return ok if shared and action == "view" else (403 if shared else 404)
    if owner != team:
        return 404
    return ok if action in ALLOWS[team_role] else 403


@pytest.fixture
def world(make_user, fake_engine):
    """Users of every role, and a container, image, volume and job of red, of blue, and unassigned."""
    from dockweb.core.reconcile import reconcile_host

    users = {"site": make_user("site", superuser=True)}
    for role, (team, team_role) in MEMBERSHIP.items():
        users[role] = make_user(role, teams={team: team_role})
    refs: dict[tuple[str, str | None], str] = {}
    for owner in OWNERS:
        labels = {"dockweb.team": owner} if owner else {}
        name = owner or "cli"
        refs["container", owner] = name + "-web"
        fake_engine.add_container(name + "-web", labels)
        image_id = fake_engine.add_image(f"{name}/app:1" if owner else "busybox:latest", labels)
        refs["image", owner] = image_id
        refs["volume", owner] = name + "-data"
        fake_engine.add_volume(name + "-data", labels)
        refs["network", owner] = name + "-net"
        fake_engine.add_network(name + "-net", labels)
    host = Host.default()
    reconcile_host(host)
    from dockweb.accounts.models import Team

    for owner in OWNERS:
        team = Team.objects.get(slug=owner) if owner else None
        creator = users["red_admin" if owner == "red" else "blue_admin" if owner == "blue" else "site"]
        refs["job", owner] = str(Job.objects.create(kind="image.pull", host=host, team=team, user=creator).pk)
    return users, refs, fake_engine


def _tokens(users) -> dict:
    from dockweb.accounts.models import ApiToken

    return {role: ApiToken.issue(user, "matrix")[1] for role, user in users.items()}


def _run_case(fake, request):
    """Run one request on a fresh copy of the world: database and fake engine both rolled back afterwards."""
    saved = copy.deepcopy((fake.containers_, fake.images_, fake.volumes_, fake.networks_))
    try:
        with rolled_back():
            return request()
    finally:
        fake.containers_, fake.images_, fake.volumes_, fake.networks_ = saved


def _fill(data: dict | None, ref: str) -> dict | None:
    if data is None:
        return None
    return {k: ([v.format(ref=ref) for v in val] if isinstance(val, list) else val) for k, val in data.items()}


@pytest.mark.parametrize("ep", API, ids=[f"{e.method} {e.url}" for e in API])
def test_rest_endpoint_answers_each_role_as_the_matrix_says(world, ep):
    users, refs, fake = world
    tokens = _tokens(users)
    got, want = {}, {}
    for role in ROLES:
        for owner in OWNERS:
            ref = refs[ep.kind, owner]
            client = Client()
            headers = {} if role == "anonymous" else {"HTTP_AUTHORIZATION": f"Bearer {tokens[role]}"}
            call = getattr(client, ep.method)
            url = ep.url.format(ref=ref)
            response = _run_case(fake, lambda: call(url, data=_fill(ep.data, ref), content_type="application/json",
                                                   **headers))
            got[role, owner] = response.status_code
            want[role, owner] = expected(role, owner, ep.kind, ep.action, ep.ok, anonymous=401)
    assert got == want


@pytest.mark.parametrize("ep", PAGES, ids=[f"{e.method} {e.url}" for e in PAGES])
def test_page_answers_each_role_as_the_matrix_says(world, ep):
    users, refs, fake = world
    got, want = {}, {}
    for role in ROLES:
        for owner in OWNERS:
            ref = refs[ep.kind, owner]
            client = Client()
            if role != "anonymous":
                client.force_login(users[role])
            url = ep.url.format(ref=ref)
            response = _run_case(fake, lambda: getattr(client, ep.method)(url, data=ep.data or {}))
            status = response.status_code
            if status == 302 and response["Location"].startswith("/accounts/login/"):
                status = "login"
            got[role, owner] = status
            want[role, owner] = expected(role, owner, ep.kind, ep.action, ep.ok, anonymous="login")
    assert got == want


def test_lists_show_each_role_only_what_it_may_see(world):
    users, refs, _ = world
    tokens = _tokens(users)

    def names(role, url, key):
        response = Client().get(url, HTTP_AUTHORIZATION=f"Bearer {tokens[role]}")
        assert response.status_code == 200
        return sorted(str(item[key]) for item in response.json()["results"])

    assert names("site", "/api/containers/", "name") == ["blue-web", "cli-web", "red-web"]
    for role in ("red_admin", "red_operator", "red_viewer"):
        assert names(role, "/api/containers/", "name") == ["red-web"]
        assert names(role, "/api/volumes/", "name") == ["red-data"]
        assert sorted(names(role, "/api/images/", "id")) == sorted([refs["image", "red"], refs["image", None]])
        assert names(role, "/api/jobs/", "id") == [refs["job", "red"]]
        assert names(role, "/api/networks/", "name") == ["cli-net", "red-net"]
    assert names("blue_admin", "/api/containers/", "name") == ["blue-web"]
    assert Client().get("/api/containers/").status_code == 401


def test_anonymous_pages_send_to_the_login_page(world):
    for url in ("/", "/containers/", "/images/", "/volumes/", "/networks/", "/jobs/", "/audit/", "/accounts/tokens/",
                "/containers/run/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


@pytest.mark.parametrize("role,status", [("site", 201), ("red_admin", 201), ("red_operator", 201),
                                         ("red_viewer", 403), ("blue_admin", 404), ("anonymous", 401)])
def test_running_a_container_for_team_red(world, role, status):
    users, _, _ = world
    client = Client()
    if role != "anonymous":
        client.force_login(users[role])
    response = client.post("/api/containers/", {"image": "busybox", "team": "red", "name": "new"},
                           content_type="application/json")
    assert response.status_code == status, response.content


@pytest.mark.parametrize("role,status", [("site", 200), ("red_admin", 200), ("red_operator", 403),
                                         ("red_viewer", 403), ("blue_admin", 404), ("anonymous", 401)])
def test_setting_a_role_in_team_red(world, role, status):
    users, _, _ = world
    client = Client()
    if role != "anonymous":
        client.force_login(users[role])
    response = client.post("/api/teams/red/members/", {"username": "blue_admin", "role": "viewer"},
                           content_type="application/json")
    assert response.status_code == status, response.content


@pytest.mark.parametrize("role,status", [("site", 200), ("red_admin", 200), ("red_operator", 403),
                                         ("red_viewer", 403), ("blue_admin", 404), ("anonymous", 401)])
def test_pruning_team_red_volumes(world, role, status):
    users, _, _ = world
    client = Client()
    if role != "anonymous":
        client.force_login(users[role])
    response = client.post("/api/volumes/prune/", {"team": "red"}, content_type="application/json")
    assert response.status_code == status, response.content


@pytest.mark.parametrize("role,status", [("site", 201), ("red_admin", 403), ("red_viewer", 403),
                                         ("anonymous", 401)])
def test_creating_a_team_is_for_site_admins(world, role, status):
    users, _, _ = world
    client = Client()
    if role != "anonymous":
        client.force_login(users[role])
    assert client.post("/api/teams/", {"name": "Green"}, content_type="application/json").status_code == status


@pytest.mark.parametrize("role,status,count", [("site", 200, None), ("red_admin", 200, "red"),
                                               ("red_operator", 403, 0), ("red_viewer", 403, 0),
                                               ("anonymous", 401, 0)])
def test_the_audit_log_is_for_site_admins_and_team_admins(world, role, status, count):
    from dockweb.core.audit import record

    users, _, _ = world
    record("container.stop", actor=users["site"], team_slug="red", object_name="red-web")
    record("container.stop", actor=users["site"], team_slug="blue", object_name="blue-web")
    client = Client()
    if role != "anonymous":
        client.force_login(users[role])
    response = client.get("/api/audit/")
    assert response.status_code == status
    if status == 200 and count == "red":
        assert {e["team_slug"] for e in response.json()["results"]} == {"red"}
    page = client.get("/audit/")
    assert page.status_code == {200: 200, 403: 403, 401: 302}[status]


def test_a_user_cannot_revoke_another_users_token(world):
    from dockweb.accounts.models import ApiToken

    users, _, _ = world
    token, _ = ApiToken.issue(users["red_admin"], "theirs")
    client = Client()
    client.force_login(users["red_viewer"])
    assert client.delete(f"/api/tokens/{token.pk}/").status_code == 404
    client.force_login(users["red_admin"])
    assert client.delete(f"/api/tokens/{token.pk}/").status_code == 200
