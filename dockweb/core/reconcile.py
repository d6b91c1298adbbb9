"""Reconcile: make a host's container, image, volume and network rows match its engine, and record its health."""

from __future__ import annotations

import logging

from dockweb.core.errors import EngineError
from dockweb.hosts.models import Host

log = logging.getLogger("dockweb.reconcile")


def reconcile_host(host: Host) -> dict:
    """Repair drift between the engine and the models; return {"containers": Drift, ...} (None: not served)."""
    from dockweb.containers import services as containers
    from dockweb.images import services as images
    from dockweb.networks import services as networks
    from dockweb.volumes import services as volumes

    try:
        drift = {"containers": containers.reconcile(host), "images": images.reconcile(host),
                 "volumes": volumes.reconcile(host), "networks": networks.reconcile(host)}
    except EngineError as e:
        host.mark(Host.Health.DOWN, e.message)
        raise
    host.mark(Host.Health.UP)
    changed = {k: v for k, v in drift.items() if v and (v.added or v.updated or v.removed)}
    if changed:
        log.info("reconcile %s repaired %s", host.name, changed)
    return drift
