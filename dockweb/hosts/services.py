"""Host verbs: list, create (site admins), check health through the engine API."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from dockweb.accounts.permissions import is_site_admin, visible
from dockweb.core import client
from dockweb.core.audit import record
from dockweb.core.errors import EngineError
from dockweb.hosts.models import Host


def list_hosts(user):
    return visible(Host, user)


def create_host(user, name: str, engine_url: str, queue: str = "") -> Host:
    """Register a host (site admins only)."""
    if not is_site_admin(user):
        record("host.create", actor=user, object_type="host", object_name=name, result="denied",
               message="only site admins may add hosts")
        raise PermissionDenied("Only site admins may add hosts")
    host = Host.objects.create(name=name, engine_url=engine_url, queue=queue)
    record("host.create", actor=user, obj=host, message=engine_url)
    return host


def check_health(host: Host) -> Host:
    """Ping the host's engine and record up (with its version) or down (with the reason)."""
    try:
        with client.calling(host, "checking health"):
            api = client.engine_client(host).api
            api.ping()
            version = api.version().get("Version", "")
    except EngineError as e:
        host.mark(Host.Health.DOWN, e.message)
    else:
        host.mark(Host.Health.UP, "", version)
    return host
