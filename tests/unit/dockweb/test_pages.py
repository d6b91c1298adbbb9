"""The pages: each renders for the roles that may see it, hides actions from viewers, masks secrets, shows the run
form's errors on their fields, and answers htmx requests with fragments."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from dockweb.core.models import Job
from dockweb.hosts.models import Host


@pytest.fixture
def world(make_user, fake_engine):
    """Site admin, red operator, red viewer; a red container (with a secret in its env), image and volume."""
    from dockweb.core.reconcile import reconcile_host

    users = {"site": make_user("site", superuser=True),
             "olga": make_user("olga", teams={"red": "operator"}),
             "vera": make_user("vera", teams={"red": "viewer"}),
             "bob": make_user("bob", teams={"blue": "admin"})}
    fake_engine.add_container("red-web", {"dockweb.team": "red", "tier": "web"})
    fake_engine.add_container("cli-made")
    fake_engine.add_image("busybox:latest")
    fake_engine.add_volume("red-data", {"dockweb.team": "red"})
    fake_engine.df = lambda: {"Images": [{"Size": 2048, "Containers": 1}], "Containers": [], "Volumes": []}
    fake_engine.events = lambda **kwargs: iter([{"Type": "container", "Action": "start", "time": 1700000000,
                                                 "Actor": {"ID": "x", "Attributes": {"name": "cli-made"}}}])
    host = Host.default()
    reconcile_host(host)
    Job.objects.create(kind="image.pull", host=host, user=users["olga"], target="busybox:latest",
                       log="pulling\n<b>done</b>\n")
    return users, fake_engine


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cid(fake, name: str) -> str:
    return fake._find(name)["Id"]


def test_every_main_page_renders_for_a_site_admin(world):
    users, fake = world
    c = client_for(users["site"])
    image_id = next(iter(fake.images_))
    job = Job.objects.get()
    for url in ("/", "/containers/", "/containers/run/", f"/containers/{cid(fake, 'red-web')}/", "/images/",
                f"/images/{image_id}/", "/volumes/", "/volumes/red-data/", "/jobs/", f"/jobs/{job.pk}/", "/audit/",
                "/accounts/teams/", "/accounts/teams/red/", "/accounts/tokens/", "/accounts/password/",
                "/hosts/local/disk/", "/hosts/local/events/"):
        response = c.get(url)
        assert response.status_code == 200, (url, response.status_code)
    assert b"2.0\xc2\xa0KB" in c.get("/hosts/local/disk/").content
    assert b"cli-made" in c.get("/hosts/local/events/").content


def test_the_login_page_labels_its_fields():
    page = Client().get("/accounts/login/").content.decode()
    assert '<label for="id_username">' in page and '<label for="id_password">' in page


def test_a_viewer_sees_no_action_buttons_and_the_operator_does(world):
    users, fake = world
    url = f"/containers/{cid(fake, 'red-web')}/"
    viewer = client_for(users["vera"])
    page = viewer.get(url).content.decode()
    assert "Container actions" not in page and "/stop/" not in page and "/remove/" not in page
    listing = viewer.get("/containers/").content.decode()
    assert 'name="refs"' not in listing and "Run a container" not in listing and 'name="action"' not in listing
    assert viewer.get("/containers/run/").status_code == 403

    operator = client_for(users["olga"]).get(url).content.decode()
    assert "Container actions" in operator and "/stop/" in operator and "/remove/" in operator
    listing = client_for(users["olga"]).get("/containers/").content.decode()
    assert 'name="refs"' in listing and 'value="stop"' in listing


def test_a_forged_stop_from_a_viewer_is_refused_with_the_reason(world):
    users, fake = world
    response = client_for(users["vera"]).post(f"/containers/{cid(fake, 'red-web')}/stop/")
    assert response.status_code == 403
    assert b"needs the operator or admin role" in response.content
    assert not [call for call in fake.calls if call[0] == "stop"]


def test_another_teams_container_is_not_found_with_a_message(world):
    users, fake = world
    response = client_for(users["bob"]).get(f"/containers/{cid(fake, 'red-web')}/")
    assert response.status_code == 404
    assert b'id="error-message"' in response.content


def test_secrets_are_masked_in_the_environment_and_in_the_inspect_json(world):
    users, fake = world
    page = client_for(users["site"]).get(f"/containers/{cid(fake, 'red-web')}/").content.decode()
    assert "DB_PASSWORD" in page and "hunter2" not in page
    assert "••••••" in page and "PATH" in page


def test_the_detail_page_shows_labels_and_the_log_tail(world):
    users, fake = world
    page = client_for(users["vera"]).get(f"/containers/{cid(fake, 'red-web')}/").content.decode()
    assert "tier" in page and "hello from the fake engine" in page
    assert f"/containers/{cid(fake, 'red-web')}/logs.txt" in page


def test_the_log_tail_fragment_escapes_the_output(world, monkeypatch):
    users, fake = world
    monkeypatch.setattr(fake, "logs", lambda ref, **kw: b"<script>alert(1)</script>\n")
    response = client_for(users["vera"]).get(f"/containers/{cid(fake, 'red-web')}/logs/?tail=5",
                                             HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert" not in body


def test_the_run_form_shows_each_error_on_its_field(world):
    users, fake = world
    response = client_for(users["olga"]).post("/containers/run/", {
        "image": "busybox", "team": "red", "memory": "1k", "ports": "http", "restart_policy": "no"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "the minimum memory limit is 6m" in page and "is not a port" in page
    memory = re.search(r'<input[^>]*name="memory"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in memory and "id_memory_error" in memory
    assert 'id="id_memory_error"' in page
    assert not [call for call in fake.calls if call[0] == "create"]


def test_the_run_form_folds_retries_into_the_on_failure_policy(world):
    users, fake = world
    response = client_for(users["olga"]).post("/containers/run/", {
        "image": "busybox", "team": "red", "restart_policy": "always", "restart_retries": "3"})
    assert response.status_code == 400 and b"retries apply to the on-failure policy only" in response.content


def test_running_from_the_form_opens_the_new_containers_page(world):
    users, fake = world
    response = client_for(users["olga"]).post("/containers/run/", {
        "image": "busybox", "name": "from-form", "team": "red", "command": "sleep 30", "restart_policy": "on-failure",
        "restart_retries": "2", "env": "A=1"})
    assert response.status_code == 302
    assert response["Location"] == f"/containers/{cid(fake, 'from-form')}/"
    assert ("create", "busybox", "from-form", {"dockweb.team": "red"}) in fake.calls


def test_the_run_form_offers_only_the_teams_the_user_operates_in(make_user, fake_engine):
    user = make_user("mixed", teams={"red": "operator", "blue": "viewer"})
    page = client_for(user).get("/containers/run/").content.decode()
    assert 'value="red"' in page and 'value="blue"' not in page and "unassigned" not in page


def test_an_htmx_list_request_gets_just_the_table_filtered_and_sorted(world):
    users, fake = world
    c = client_for(users["site"])
    full = c.get("/containers/").content.decode()
    assert "<html" in full and "red-web" in full and "cli-made" in full
    part = c.get("/containers/?team=red&order=-name", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in part and "red-web" in part and "cli-made" not in part
    assert 'aria-sort="descending"' in part


def test_removing_through_htmx_sends_the_browser_to_the_list(world):
    users, fake = world
    response = client_for(users["olga"]).post(f"/containers/{cid(fake, 'red-web')}/remove/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Redirect"] == "/containers/"


def test_a_bulk_stop_from_the_list_opens_its_job(world):
    users, fake = world
    response = client_for(users["olga"]).post("/containers/bulk/", {"action": "stop",
                                                                     "refs": [cid(fake, "red-web")]})
    job = Job.objects.get(kind="containers.bulk")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"


def test_a_running_job_page_follows_its_socket_and_a_finished_one_does_not(world):
    users, _ = world
    job = Job.objects.get()
    c = client_for(users["olga"])
    page = c.get(f"/jobs/{job.pk}/").content.decode()
    assert f'data-ws="/ws/jobs/{job.pk}/"' in page and 'data-done="0"' in page and "live/job.js" in page
    fragment = c.get(f"/jobs/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and "&lt;b&gt;done&lt;/b&gt;" in fragment
    job.mark_succeeded("pulled")
    page = c.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-done="1"' in page and "live/job.js" not in page


def test_the_audit_page_filters(world):
    users, fake = world
    client_for(users["olga"]).post(f"/containers/{cid(fake, 'red-web')}/stop/")
    client_for(users["vera"]).post(f"/containers/{cid(fake, 'red-web')}/stop/")
    page = client_for(users["site"]).get("/audit/?result=denied", HTTP_HX_REQUEST="true").content.decode()
    assert "vera" in page and "olga" not in page
    assert client_for(users["vera"]).get("/audit/").status_code == 403


def test_a_site_admin_gives_a_cli_container_to_a_team(world):
    users, fake = world
    url = f"/containers/{cid(fake, 'cli-made')}/"
    assert "Give it to a team" in client_for(users["site"]).get(url).content.decode()
    response = client_for(users["site"]).post(url + "assign/", {"team": "red"})
    assert response.status_code == 302
    assert client_for(users["vera"]).get(url).status_code == 200


def test_team_admins_manage_members_and_site_admins_create_teams(world):
    users, _ = world
    site = client_for(users["site"])
    assert site.post("/accounts/teams/", {"name": "Green"}).status_code == 302
    assert site.post("/accounts/teams/green/members/", {"username": "vera", "role": "admin"}).status_code == 302
    page = client_for(users["vera"]).get("/accounts/teams/green/").content.decode()
    assert "Add a member" in page
    assert client_for(users["olga"]).post("/accounts/teams/", {"name": "Mine"}).status_code == 403
    red = client_for(users["vera"]).get("/accounts/teams/red/").content.decode()
    assert "Add a member" not in red


def test_a_new_token_is_shown_once(world):
    users, _ = world
    c = client_for(users["vera"])
    page = c.post("/accounts/tokens/", {"name": "ci"}).content.decode()
    token = re.search(r'id="new-token">(dw_[^<]+)<', page).group(1)
    assert token not in c.get("/accounts/tokens/").content.decode()


def test_pages_load_the_vendored_css_and_htmx(world):
    users, _ = world
    page = client_for(users["site"]).get("/").content.decode()
    assert "vendor/pico-2.1.1/pico.min.css" in page and "vendor/htmx-2.0.11/htmx.min.js" in page
    assert 'id="theme-toggle"' in page and "X-CSRFToken" in page
