"""Container jobs: bulk start/stop/restart/kill/remove."""

from celery import shared_task

from dockweb.containers import services
from dockweb.core.jobs import run_job


# Not retried: a half-done bulk stop is safe to re-run by hand, not blindly.
@shared_task(bind=True)
def bulk_action(self, job_id: int) -> None:
    run_job(job_id, services.run_bulk_action, self.request.id or "")
