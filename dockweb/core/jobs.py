"""Jobs: create one, queue its task on the host's queue after commit, and the one wrapper that runs it.

run_job is the only place that marks a job running, succeeded or failed: tasks stay one line.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404

from dockweb.accounts.permissions import get_for_user, visible
from dockweb.core.audit import record
from dockweb.core.errors import EngineError
from dockweb.core.models import Job

log = logging.getLogger("dockweb.jobs")

# Failures a user can act on: the job fails with the message, the worker logs no traceback.
EXPECTED = (EngineError, PermissionDenied, Http404)


def create_job(user, kind: str, *, host=None, team=None, target: str = "", params: dict | None = None) -> Job:
    return Job.objects.create(kind=kind, host=host, team=team, user=user if user and user.is_authenticated else None,
                              target=target[:255], params=params or {})


def enqueue(job: Job, task) -> Job:
    """Send task(job.id) to the job's host queue once the job row is committed (a worker must find it)."""
    queue = job.host.queue if job.host_id else None

    def send() -> None:
        result = task.apply_async(args=[job.pk], queue=queue)
        if result.id:
            Job.objects.filter(pk=job.pk, celery_task_id="").update(celery_task_id=result.id)

    transaction.on_commit(send)
    return job


def run_job(job_id: int, work: Callable[[Job], str | None], task_id: str = "") -> Job:
    """Mark the job running, call work(job), then mark it succeeded (with work's message) or failed."""
    job = Job.objects.select_related("user", "team", "host").get(pk=job_id)
    if job.done:
        log.warning("job %s is already %s: not running it again", job.pk, job.state)
        return job
    job.mark_running(task_id)
    try:
        message = work(job)
    except SoftTimeLimitExceeded:
        job.mark_failed("the job ran past its time limit and was stopped")
        _audit(job, "failed")
        return job
    except EXPECTED as e:
        job.mark_failed(str(e.message if isinstance(e, EngineError) else e) or type(e).__name__)
        _audit(job, "failed")
        return job
    except Exception as e:
        job.mark_failed(f"internal error: {e.__class__.__name__}: {e}")
        _audit(job, "failed")
        raise  # the worker logs the traceback
    job.mark_succeeded(message or "")
    _audit(job, "ok")
    return job


def _audit(job: Job, result: str) -> None:
    record(job.kind, actor=job.user, obj=job, result=result,
           message=job.error if result != "ok" else (job.message or job.target))


def append_log(job: Job | int, text: str) -> None:
    """Add text to the job's log and send it to the job's live viewers ({"type": "job.log"} to its group)."""
    from dockweb.core.events import job_group, publish

    if not text:
        return
    if not isinstance(job, Job):
        job = Job.objects.get(pk=job)
    text = text if text.endswith("\n") else text + "\n"
    job.append_log(text)
    # "at": when it was saved, so a viewer that read the log after that skips it.
    publish(job_group(job.pk), {"type": "job.log", "text": text, "at": time.time()})


def list_jobs(user):
    return visible(Job, user).select_related("host", "team", "user")


def get_job(user, job_id) -> Job:
    return get_for_user(Job, user, job_id, "view")
