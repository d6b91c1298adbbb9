"""Periodic tasks: reconcile every host and check its health (beat runs reconcile_all)."""

from __future__ import annotations

from celery import shared_task

from dockweb.core import reconcile
from dockweb.core.errors import EngineUnavailable
from dockweb.hosts.models import Host


# Idempotent, so retrying it when the engine was briefly away is safe.
@shared_task(autoretry_for=(EngineUnavailable,), retry_backoff=5, max_retries=3)
def reconcile_host(host_id: int) -> None:
    reconcile.reconcile_host(Host.objects.get(pk=host_id))


@shared_task
def reconcile_all() -> None:
    """Fan out one reconcile per host, each on that host's queue."""
    for host_id, queue in Host.objects.order_by("pk").values_list("pk", "queue"):
        reconcile_host.apply_async(args=[host_id], queue=queue)
