"""First run: the first host, the periodic reconcile, and an admin with a one-time password printed once."""

from __future__ import annotations

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from dockweb.core.audit import record
from dockweb.hosts.models import Host

RECONCILE_TASK = "dockweb: reconcile every host"


class Command(BaseCommand):
    help = "Create the first host, the reconcile schedule and, when no site admin exists, one (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="")

    def handle(self, *args, username: str, email: str, **options) -> None:
        with transaction.atomic():
            host = Host.default()
            self._schedule_reconcile()
            password = self._create_admin(username, email)
        self.stdout.write(f"host {host.name}: {host.engine_url} (Celery queue {host.queue})")
        if password is None:
            self.stdout.write("a site admin exists already: no password was changed")
        else:
            # Printed once and stored nowhere: the admin changes it after the first login.
            self.stdout.write(f"created site admin {username!r} with the one-time password: {password}")

    def _create_admin(self, username: str, email: str) -> str | None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return None
        password = secrets.token_urlsafe(12)
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_superuser(username=username, email=email, password=password)
        else:
            user.is_superuser = user.is_staff = user.is_active = True
            user.set_password(password)
            user.save()
        record("user.create_admin", object_type="user", object_id=str(user.pk), object_name=username,
               actor_name="dockweb_init", message="first-run site admin")
        return password

    def _schedule_reconcile(self) -> None:
        from django_celery_beat.models import IntervalSchedule, PeriodicTask

        every, _ = IntervalSchedule.objects.get_or_create(every=settings.RECONCILE_SECONDS,
                                                          period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.update_or_create(
            name=RECONCILE_TASK,
            defaults={"task": "dockweb.core.tasks.reconcile_all", "interval": every, "args": json.dumps([]),
                      "queue": settings.CELERY_TASK_DEFAULT_QUEUE, "enabled": True})
