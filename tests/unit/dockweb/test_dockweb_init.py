"""manage.py dockweb_init: the first host, the reconcile schedule, a site admin with a password printed once."""

from __future__ import annotations

import io
import re

from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from dockweb.core.models import AuditEntry
from dockweb.hosts.models import Host


def init(*args) -> str:
    out = io.StringIO()
    call_command("dockweb_init", *args, stdout=out)
    return out.getvalue()


def test_first_run_creates_an_admin_whose_printed_password_works(db):
    out = init()
    password = re.search(r"one-time password: (\S+)", out).group(1)
    assert len(password) >= 12
    user = authenticate(username="admin", password=password)
    assert user is not None and user.is_superuser and user.is_staff
    assert AuditEntry.objects.filter(action="user.create_admin", object_name="admin").exists()


def test_second_run_changes_nothing_and_prints_no_password(db):
    first = init()
    password = re.search(r"one-time password: (\S+)", first).group(1)
    second = init()
    assert "password" not in second.replace("no password was changed", "")
    assert authenticate(username="admin", password=password) is not None
    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    assert Host.objects.count() == 1


def test_it_creates_the_first_host_and_the_reconcile_schedule(db):
    from django_celery_beat.models import PeriodicTask

    out = init()
    host = Host.objects.get()
    assert (host.name, host.queue) == ("local", "host.local")
    assert f"host local: {host.engine_url}" in out
    task = PeriodicTask.objects.get(task="dockweb.core.tasks.reconcile_all")
    assert task.enabled and task.interval.every == 60 and task.queue == "dockweb"
    init()
    assert PeriodicTask.objects.filter(task="dockweb.core.tasks.reconcile_all").count() == 1


def test_an_existing_site_admin_means_no_new_one(make_user):
    make_user("boss", superuser=True)
    out = init()
    assert "a site admin exists already" in out
    assert not get_user_model().objects.filter(username="admin").exists()
