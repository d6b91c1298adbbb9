"""Overview services: counts, host health, disk usage (GET /system/df) and recent engine events a user may see."""

from __future__ import annotations

import time

from dockweb.accounts.permissions import get_for_user, is_site_admin, visible
from dockweb.containers.models import Container
from dockweb.core import client
from dockweb.core.audit import can_read_audit, visible_entries
from dockweb.core.jobs import list_jobs
from dockweb.hosts.models import Host
from dockweb.images.models import Image
from dockweb.volumes.models import Volume


def overview(user) -> dict:
    """Return what the overview page shows, from the models only (no engine call: it must stay fast)."""
    containers = visible(Container, user)
    return {
        "hosts": list(visible(Host, user)),
        "counts": {
            "containers": containers.count(),
            "running": containers.filter(state=Container.State.RUNNING).count(),
            "images": visible(Image, user).count(),
            "volumes": visible(Volume, user).count(),
        },
        "recent_jobs": list(list_jobs(user)[:10]),
        "recent_audit": list(visible_entries(user)[:10]) if can_read_audit(user) else [],
    }


def disk_usage(user, host_name: str) -> dict:
    """Return the host's disk use by kind: {"images": {"count", "size", "reclaimable"}, "containers": ..., ...}."""
    host = get_for_user(Host, user, host_name, "view")
    with client.calling(host, "reading disk usage"):
        df = client.engine_client(host).api.df()
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    return {
        "images": {"count": len(images), "size": sum(i.get("Size") or 0 for i in images),
                   "reclaimable": sum(i.get("Size") or 0 for i in images if not i.get("Containers"))},
        "containers": {"count": len(containers), "size": sum(c.get("SizeRw") or 0 for c in containers),
                       "reclaimable": sum(c.get("SizeRw") or 0 for c in containers if c.get("State") != "running")},
        "volumes": {"count": len(volumes),
                    "size": sum(max((v.get("UsageData") or {}).get("Size") or 0, 0) for v in volumes),
                    "reclaimable": sum(max((v.get("UsageData") or {}).get("Size") or 0, 0) for v in volumes
                                       if not (v.get("UsageData") or {}).get("RefCount"))},
    }


def recent_events(user, host_name: str, since_seconds: int = 3600, limit: int = 20) -> list[dict]:
    """Return the host's latest engine events (newest first) about objects user may see."""
    host = get_for_user(Host, user, host_name, "view")
    # Whole seconds: until rounds up so that events of the current second are included.
    now = int(time.time()) + 1
    with client.calling(host, "reading recent events"):
        events = list(client.engine_client(host).api.events(since=now - since_seconds, until=now, decode=True))
    if not is_site_admin(user):
        container_ids = set(visible(Container, user).filter(host=host).values_list("engine_id", flat=True))
        volume_names = set(visible(Volume, user).filter(host=host).values_list("name", flat=True))

        def allowed(ev: dict) -> bool:
            ident = (ev.get("Actor") or {}).get("ID", "")
            kind = ev.get("Type")
            return (kind == "container" and ident in container_ids) or (kind == "volume" and ident in volume_names) \
                or kind == "image"
        events = [ev for ev in events if allowed(ev)]
    return events[::-1][:limit]
