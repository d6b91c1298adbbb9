"""Image jobs: pull and build."""

from celery import shared_task

from dockweb.core.jobs import run_job
from dockweb.images import services


@shared_task(bind=True)
def pull_image(self, job_id: int) -> None:
    run_job(job_id, services.run_pull, self.request.id or "")


@shared_task(bind=True)
def build_image(self, job_id: int) -> None:
    run_job(job_id, services.run_build, self.request.id or "")
