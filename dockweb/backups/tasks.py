"""Backup jobs: back up, verify, restore; beat's scheduled policy runs and the overdue check. Tasks take ids."""

from celery import shared_task

from dockweb.backups import services
from dockweb.core.jobs import run_job


# Not retried: a half-done backup leaves nothing, and a blind retry would pause the containers twice.
@shared_task(bind=True)
def run_backup(self, job_id: int) -> None:
    run_job(job_id, services.run_backup_job, self.request.id or "")


@shared_task(bind=True)
def verify_backup(self, job_id: int) -> None:
    run_job(job_id, services.run_verify_job, self.request.id or "")


@shared_task(bind=True)
def restore_backup(self, job_id: int, sealed_secret: str = "") -> None:
    run_job(job_id, lambda job: services.run_restore_job(job, sealed_secret), self.request.id or "")


@shared_task
def run_policy(policy_id: int) -> None:
    """Beat fires this per policy, on the policy's host queue."""
    services.run_policy(policy_id)


@shared_task
def check_policies() -> None:
    services.check_policies()
