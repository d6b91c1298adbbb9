"""The audit log: append-only in the model, and written for actions, role changes and failed logins."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client

from dockweb.core.audit import record
from dockweb.core.models import AuditEntry, AuditLogIsAppendOnly


def test_an_entry_cannot_be_changed(db):
    entry = record("container.stop", object_name="web")
    entry.result = "failed"
    with pytest.raises(AuditLogIsAppendOnly, match="append-only"):
        entry.save()
    assert AuditEntry.objects.get(pk=entry.pk).result == "ok"


def test_an_entry_cannot_be_deleted(db):
    entry = record("container.stop", object_name="web")
    with pytest.raises(AuditLogIsAppendOnly):
        entry.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEntry.objects.all().update(message="rewritten")
    with pytest.raises(AuditLogIsAppendOnly), transaction.atomic():
        AuditEntry.objects.bulk_update([entry], ["message"])
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_deleting_a_user_keeps_their_entries(make_user):
    user = make_user("gone")
    record("container.stop", actor=user, object_name="web")
    user.delete()
    entry = AuditEntry.objects.get(action="container.stop")
    assert entry.actor_name == "gone"


def test_a_failed_login_is_recorded_with_the_name_tried_and_the_address(make_user):
    make_user("olga", password="right-password-1")
    response = Client(REMOTE_ADDR="192.0.2.7").post("/accounts/login/",
                                                    {"username": "olga", "password": "s3cret-guess"})
    assert response.status_code == 200  # the form again, with its error
    entry = AuditEntry.objects.get(action="auth.login_failed")
    assert (entry.actor_name, entry.result, entry.source_ip) == ("olga", "denied", "192.0.2.7")
    assert "s3cret-guess" not in entry.message


def test_a_successful_login_is_recorded(make_user):
    make_user("olga", password="right-password-1")
    response = Client().post("/accounts/login/", {"username": "olga", "password": "right-password-1"})
    assert response.status_code == 302
    assert AuditEntry.objects.filter(action="auth.login", actor_name="olga", result="ok").exists()


def test_a_bad_api_token_is_recorded(db):
    response = Client(REMOTE_ADDR="192.0.2.8").get("/api/containers/", HTTP_AUTHORIZATION="Bearer dw_nonsense")
    assert response.status_code == 401
    entry = AuditEntry.objects.get(action="auth.token_failed")
    assert (entry.result, entry.source_ip) == ("denied", "192.0.2.8")


def test_a_role_change_is_recorded_with_before_and_after(make_user):
    from dockweb.accounts import services

    admin = make_user("anna", teams={"red": "admin"})
    make_user("vera", teams={"red": "viewer"})
    services.set_role(admin, "red", "vera", "operator")
    entry = AuditEntry.objects.get(action="team.role")
    assert (entry.actor_name, entry.team_slug, entry.message) == ("anna", "red", "vera: viewer -> operator")


def test_an_action_through_the_api_records_the_source_address(make_user, fake_engine):
    from dockweb.containers import services
    from dockweb.hosts.models import Host

    user = make_user("olga", teams={"red": "operator"})
    fake_engine.add_container("web", {"dockweb.team": "red"})
    services.reconcile(Host.default())
    client = Client(REMOTE_ADDR="198.51.100.4")
    client.force_login(user)
    assert client.post("/api/containers/web/stop/", {}, content_type="application/json").status_code == 200
    entry = AuditEntry.objects.get(action="container.stop")
    assert (entry.actor_name, entry.object_name, entry.team_slug, entry.host_name, entry.source_ip) == (
        "olga", "web", "red", "local", "198.51.100.4")


def test_a_refused_action_is_recorded_as_denied(make_user, fake_engine):
    from dockweb.containers import services
    from dockweb.hosts.models import Host

    viewer = make_user("vera", teams={"red": "viewer"})
    fake_engine.add_container("web", {"dockweb.team": "red"})
    services.reconcile(Host.default())
    client = Client()
    client.force_login(viewer)
    assert client.post("/api/containers/web/kill/", {}, content_type="application/json").status_code == 403
    assert AuditEntry.objects.get(action="container.kill").result == "denied"


def test_the_last_admin_of_a_team_cannot_be_demoted(make_user):
    from django.core.exceptions import ValidationError

    from dockweb.accounts import services

    admin = make_user("anna", teams={"red": "admin"})
    with pytest.raises(ValidationError, match="last admin"):
        services.set_role(admin, "red", "anna", "viewer")
