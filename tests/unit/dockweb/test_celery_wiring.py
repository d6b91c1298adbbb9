"""Celery wiring: settings from Django, beat from the database, one queue per host, tasks registered."""

from __future__ import annotations

from dockweb.celery import app, host_queues
from dockweb.hosts.models import Host


def test_the_app_reads_django_settings():
    from django.conf import settings

    assert app.conf.broker_url == settings.REDIS_URL
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert app.conf.task_default_queue == "dockweb"
    assert app.conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT > app.conf.task_soft_time_limit


def test_every_job_task_is_registered():
    app.loader.import_default_modules()
    for name in ("dockweb.containers.tasks.bulk_action", "dockweb.images.tasks.pull_image",
                 "dockweb.core.tasks.reconcile_host", "dockweb.core.tasks.reconcile_all"):
        assert name in app.tasks, name


def test_a_worker_consumes_the_default_queue_and_each_hosts(db):
    Host.default()
    Host.objects.create(name="edge-1", engine_url="tcp://10.0.0.9:2376")
    assert host_queues() == ["dockweb", "host.local", "host.edge-1"]


def test_reconcile_all_fans_out_to_each_hosts_queue(db, monkeypatch):
    from dockweb.core import tasks

    sent = []
    monkeypatch.setattr(tasks.reconcile_host, "apply_async", lambda args, queue: sent.append((args, queue)))
    a = Host.default()
    b = Host.objects.create(name="edge-1", engine_url="tcp://10.0.0.9:2376")
    tasks.reconcile_all()
    assert sent == [([a.pk], "host.local"), ([b.pk], "host.edge-1")]
