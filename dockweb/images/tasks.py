"""Image jobs: pull."""

from celery import shared_task

from dockweb.core.jobs import run_job
from dockweb.images import services


@shared_task(bind=True)
def pull_image(self, job_id: int) -> None:
    run_job(job_id, services.run_pull, self.request.id or "")
