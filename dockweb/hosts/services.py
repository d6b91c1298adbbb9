"""Host verbs: list, create, change and remove (site admins), check health through the engine API."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.text import slugify

from dockweb.accounts.permissions import is_site_admin, visible
from dockweb.core import client
from dockweb.core.audit import record
from dockweb.core.errors import EngineError
from dockweb.hosts.models import Host


def list_hosts(user):
    return visible(Host, user)


QUEUE_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def validate(name: str, engine_url: str, queue: str, instance: Host | None = None) -> None:
    """Check a host's fields; raise ValidationError naming each bad field."""
    errors: dict[str, list[str]] = {}
    if not name or slugify(name) != name:
        errors["name"] = ["a host name is lower-case letters, digits, - and _ (a slug)"]
    elif Host.objects.filter(name=name).exclude(pk=getattr(instance, "pk", None)).exists():
        errors["name"] = [f"a host named {name} exists already"]
    url = urlsplit(engine_url or "")
    if url.scheme == "unix":
        if not (url.path or "").startswith("/"):
            errors["engine_url"] = ["a unix socket URL names an absolute path: unix:///run/dockweb/engine.sock"]
    elif url.scheme in ("tcp", "http", "https"):
        try:
            port = url.port
        except ValueError:
            port = None
        if not url.hostname or not port:
            errors["engine_url"] = ["a TCP engine URL names a host and a port: tcp://10.0.0.5:2375"]
    else:
        errors["engine_url"] = ["the engine URL starts with unix://, tcp://, http:// or https://"]
    if queue and not QUEUE_RE.match(queue):
        errors["queue"] = ["a queue name is letters, digits, _ . and -"]
    elif queue and Host.objects.filter(queue=queue).exclude(pk=getattr(instance, "pk", None)).exists():
        errors["queue"] = [f"another host uses the queue {queue}"]
    if errors:
        raise ValidationError(errors)


def _site_admin_only(user, action: str, name: str) -> None:
    if not is_site_admin(user):
        record(action, actor=user, object_type="host", object_name=name, result="denied",
               message="only site admins manage hosts")
        raise PermissionDenied("Only site admins manage hosts")


def create_host(user, name: str, engine_url: str, queue: str = "") -> Host:
    """Register a host (site admins only) and check its engine at once."""
    _site_admin_only(user, "host.create", name)
    validate(name, engine_url, queue)
    host = Host.objects.create(name=name, engine_url=engine_url, queue=queue)
    record("host.create", actor=user, obj=host, message=engine_url)
    return check_health(host)


def update_host(user, host: Host, engine_url: str, queue: str) -> Host:
    """Point a host at another engine URL or queue (site admins only). A changed queue needs a worker on it."""
    _site_admin_only(user, "host.update", host.name)
    validate(host.name, engine_url, queue or host.queue, instance=host)
    host.engine_url, host.queue = engine_url, queue or host.queue
    host.save(update_fields=["engine_url", "queue"])
    client.close_clients()  # this thread's client for the old URL
    record("host.update", actor=user, obj=host, message=engine_url)
    return check_health(host)


def remove_host(user, host: Host) -> None:
    """Forget a host and its rows (site admins only); its engine and containers are not touched."""
    _site_admin_only(user, "host.remove", host.name)
    record("host.remove", actor=user, obj=host, message=host.engine_url)
    host.delete()


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
