"""Jobs on a real Celery worker and a real Redis: a job is marked running then succeeded, or failed with the
engine's message. The worker is a separate process on the same SQLite file as this test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.polling import wait_for
from tests.unit.dockweb.support import REPO, flush_database, redis_server, setup_django, stop_process

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from dockweb.accounts.models import Membership, Team  # noqa: E402
from dockweb.celery import app  # noqa: E402
from dockweb.containers import tasks as container_tasks  # noqa: E402
from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.core.jobs import create_job  # noqa: E402
from dockweb.core.models import AuditEntry, Job  # noqa: E402
from dockweb.core.reconcile import reconcile_host  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402
from dockweb.images import tasks as image_tasks  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def redis_url():
    with redis_server() as url:
        yield url


@pytest.fixture
def worker(engine, redis_url):
    """A host on the test engine and a real `celery worker` consuming its queue, on this test's database."""
    if connection.vendor != "sqlite":
        pytest.skip("the worker test shares a SQLite file with its worker process")
    host = Host.objects.create(name="celery-it", engine_url=engine.base_url)
    env = dict(os.environ, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="dockweb.settings",
               DOCKWEB_CHANNEL_LAYER="memory", PYTHONPATH=str(REPO))
    assert env["DATABASE_URL"].startswith("sqlite:///") and ":memory:" not in env["DATABASE_URL"]
    log_path = Path(tempfile.mkdtemp(prefix="dockweb-test-celery-")) / "worker.log"
    log = open(log_path, "wb")
    # solo pool: one process, no forks; jobs run in the worker's main thread.
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "dockweb", "worker", "--pool", "solo",
                             "--queues", f"dockweb,{host.queue}", "--loglevel", "INFO", "--without-heartbeat",
                             "--without-gossip", "--without-mingle"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield host, redis_url, log_path
    finally:
        stop_process(proc, timeout=15)
        log.close()
        shutil.rmtree(log_path.parent, ignore_errors=True)
        for c in engine.client().containers.list(all=True):
            c.remove(force=True)
        engine_clients.close_clients()
        flush_database()


def operator():
    user = get_user_model().objects.create_user("olga")
    team, _ = Team.objects.get_or_create(slug="red", defaults={"name": "Red"})
    Membership.objects.create(user=user, team=team, role="operator")
    return user, team


def send(task, job: Job, redis_url: str) -> None:
    """Queue task(job.id) on the job's host queue through the test's Redis (the settings point elsewhere)."""
    with app.connection_for_write(redis_url) as conn:
        task.apply_async(args=[job.pk], queue=job.host.queue, connection=conn)


def finished(job: Job, log_path: Path, timeout: float = 90) -> Job:
    done = wait_for(lambda: Job.objects.get(pk=job.pk).done, timeout=timeout, interval=0.1)
    assert done, f"job {job.pk} is still {Job.objects.get(pk=job.pk).state}; worker log:\n" + log_path.read_text()
    return Job.objects.get(pk=job.pk)


def test_a_bulk_start_job_runs_on_the_worker_and_succeeds(worker, engine):
    host, redis_url, log_path = worker
    user, team = operator()
    cid = engine.client().api.create_container("busybox", ["sleep", "300"], name="jobbed",
                                               labels={"dockweb.team": "red"})["Id"]
    reconcile_host(host)
    job = create_job(user, "containers.bulk", host=host, team=team, target="start 1 container(s)",
                     params={"action": "start", "ids": [cid]})
    assert job.state == "queued"
    send(container_tasks.bulk_action, job, redis_url)
    job = finished(job, log_path)
    assert job.state == "succeeded", job.error
    assert job.started is not None and job.started <= job.finished and job.progress == 1.0
    assert job.celery_task_id  # the worker recorded which task ran it
    assert f"start {cid[:12]}: ok" in job.log
    assert engine.client().api.inspect_container(cid)["State"]["Status"] == "running"
    assert AuditEntry.objects.filter(action="container.start", actor_name="olga", result="ok").exists()
    assert AuditEntry.objects.filter(action="containers.bulk", result="ok").exists()


def test_a_pull_job_that_the_engine_refuses_fails_with_the_engines_message(worker, engine):
    host, redis_url, log_path = worker
    user, team = operator()
    job = create_job(user, "image.pull", host=host, team=team, target="dockweb-test/nosuch:1",
                     params={"image": "dockweb-test/nosuch:1"})
    send(image_tasks.pull_image, job, redis_url)
    job = finished(job, log_path)
    assert job.state == "failed"
    expected = engine.docker("pull", "dockweb-test/nosuch:1").stderr.strip()
    assert job.error and job.error in expected, (job.error, expected)
    assert job.started is not None
    assert AuditEntry.objects.get(action="image.pull").result == "failed"
