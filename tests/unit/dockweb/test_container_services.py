"""Container services over a fake engine: run labels the team, verbs re-read the engine, list filters."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from dockweb.containers import services
from dockweb.containers.models import Container
from dockweb.containers.runspec import parse_run_input
from dockweb.core.models import AuditEntry
from dockweb.hosts.models import Host


@pytest.fixture
def operator(make_user):
    return make_user("olga", teams={"red": "operator"})


def test_run_labels_the_container_with_the_team_and_records_it(operator, fake_engine):
    c = services.run_container(operator, parse_run_input({"image": "busybox", "name": "web", "team": "red"}))
    assert c.team.slug == "red"
    assert c.labels == {"dockweb.team": "red"}
    assert c.state == "running"
    assert ("start", c.engine_id) in fake_engine.calls
    entry = AuditEntry.objects.get(action="container.run")
    assert (entry.actor_name, entry.team_slug, entry.object_name, entry.result) == ("olga", "red", "web", "ok")


def test_run_without_a_team_is_for_site_admins_only(operator, make_user, fake_engine):
    with pytest.raises(PermissionDenied, match="Pick a team"):
        services.run_container(operator, parse_run_input({"image": "busybox"}))
    admin = make_user("root", superuser=True)
    c = services.run_container(admin, parse_run_input({"image": "busybox", "name": "loose"}))
    assert c.team is None and "dockweb.team" not in c.labels


def test_run_for_another_team_answers_404(operator, make_user, fake_engine):
    make_user("bob", teams={"blue": "admin"})
    with pytest.raises(Http404):
        services.run_container(operator, parse_run_input({"image": "busybox", "team": "blue"}))
    assert fake_engine.calls == []


def test_a_viewer_cannot_run_and_the_refusal_is_audited(make_user, fake_engine):
    viewer = make_user("vera", teams={"red": "viewer"})
    with pytest.raises(PermissionDenied):
        services.run_container(viewer, parse_run_input({"image": "busybox", "team": "red"}))
    assert fake_engine.calls == []


def test_bind_mounts_are_for_site_admins_only(operator, fake_engine):
    spec = parse_run_input({"image": "busybox", "team": "red", "volumes": "/etc:/host-etc:ro"})
    with pytest.raises(ValidationError, match="only site admins may mount host paths"):
        services.run_container(operator, spec)


def test_stop_rereads_the_state_from_the_engine(operator, fake_engine):
    cid = fake_engine.add_container("web", {"dockweb.team": "red"})
    services.reconcile(Host.default())
    c = services.stop_container(operator, "web")
    assert c.state == "exited"
    assert Container.objects.get(engine_id=cid).state == "exited"
    assert AuditEntry.objects.filter(action="container.stop", result="ok", object_id=cid).exists()


def test_an_engine_refusal_is_raised_with_its_message_and_audited_as_failed(operator, fake_engine, monkeypatch):
    from dockweb.core.errors import EngineConflict
    from tests.unit.dockweb.support import api_error

    fake_engine.add_container("web", {"dockweb.team": "red"})
    services.reconcile(Host.default())

    def refuse(ref):
        raise api_error(409, "container web is paused: unpause it first")

    monkeypatch.setattr(fake_engine, "start", refuse)
    with pytest.raises(EngineConflict, match="unpause it first"):
        services.start_container(operator, "web")
    entry = AuditEntry.objects.get(action="container.start")
    assert entry.result == "failed" and "unpause" in entry.message


def test_remove_deletes_the_row(operator, fake_engine):
    cid = fake_engine.add_container("web", {"dockweb.team": "red"})
    services.reconcile(Host.default())
    services.remove_container(operator, cid[:12])
    assert not Container.objects.filter(engine_id=cid).exists()
    assert cid not in fake_engine.containers_


def test_logs_tail_is_text(operator, make_user, fake_engine):
    fake_engine.add_container("web", {"dockweb.team": "red"})
    services.reconcile(Host.default())
    viewer = make_user("vera", teams={"red": "viewer"})
    assert services.container_logs(viewer, "web", tail=10) == "hello from the fake engine\n"


def test_list_filters_by_state_team_label_image_and_search(make_user, fake_engine):
    admin = make_user("root", superuser=True)
    make_user("x", teams={"red": "viewer", "blue": "viewer"})
    fake_engine.add_container("red-web", {"dockweb.team": "red", "tier": "web"})
    fake_engine.add_container("blue-db", {"dockweb.team": "blue", "tier": "db"}, state="exited", image="postgres:16")
    fake_engine.add_container("cli-made", {})
    services.reconcile(Host.default())

    def names(**kw):
        return [c.name for c in services.list_containers(admin, **kw)]

    assert names() == ["blue-db", "cli-made", "red-web"]
    assert names(state="exited") == ["blue-db"]
    assert names(team="red") == ["red-web"]
    assert names(team="none") == ["cli-made"]
    assert names(label="tier") == ["blue-db", "red-web"]
    assert names(label="tier=db") == ["blue-db"]
    assert names(image="postgres") == ["blue-db"]
    assert names(search="WEB") == ["red-web"]
    assert names(order="-name") == ["red-web", "cli-made", "blue-db"]


def test_masked_env_hides_secret_looking_values():
    assert services.masked_env(["PATH=/bin", "DB_PASSWORD=x", "API_TOKEN=y"]) == [
        ("PATH", "/bin"), ("DB_PASSWORD", "••••••"), ("API_TOKEN", "••••••")]
