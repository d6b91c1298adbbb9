"""The Celery app: settings from Django (CELERY_*), tasks from every app, one queue per host, beat from the database."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockweb.settings")

app = Celery("dockweb")
# CELERY_BROKER_URL, time limits and CELERY_BEAT_SCHEDULER (django-celery-beat's DatabaseScheduler) live in
# settings.py. Routing is per call: a job for an object goes to its host's queue (Host.queue), everything
# else to the default queue "dockweb". A worker per host consumes `-Q dockweb,<host queue>`.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def host_queues() -> list[str]:
    """Return the queue names a worker on this site should consume: the default queue and every host's."""
    from dockweb.hosts.models import Host

    return [app.conf.task_default_queue, *Host.objects.order_by("pk").values_list("queue", flat=True)]
