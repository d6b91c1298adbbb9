"""The events bridge: follow each host's engine events, update the models, and tell channel groups.

One HostListener thread per host subscribes to GET /events first, then reconciles, then applies each event:
an event that happens during the reconcile is applied after it, so nothing falls between the two.
"""

from __future__ import annotations

import logging
import threading

from asgiref.sync import async_to_sync
from django.db import close_old_connections, connection

from dockweb.core import client
from dockweb.core.errors import ENGINE_EXCEPTIONS, EngineError, EngineUnavailable, from_docker
from dockweb.hosts.models import Host

log = logging.getLogger("dockweb.events")

# Container actions that change nothing the models hold.
_IGNORED = ("exec_", "attach", "resize", "top", "export", "archive-path", "extract-to-dir", "copy")


def host_group(host_id: int) -> str:
    return f"host-{host_id}"


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


def container_group(engine_id: str) -> str:
    return f"container-{engine_id[:64]}"


def publish(group: str, message: dict) -> None:
    """Send message to a channel group; a missing layer or a down Redis loses the message, never the caller."""
    try:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(group, message)
    except Exception as e:  # live updates are best effort: models and the audit log are the record
        log.debug("could not publish to %s: %s", group, e)


def publish_job(job) -> None:
    publish(job_group(job.pk), {"type": "job.update", "job": job.to_dict()})


def handle_event(host: Host, event: dict) -> None:
    """Apply one engine event to the models, then publish it to the host's (and container's) group."""
    from dockweb.containers import services as containers
    from dockweb.images import services as images
    from dockweb.networks import services as networks
    from dockweb.volumes import services as volumes

    kind = event.get("Type") or ""
    action = event.get("Action") or event.get("status") or ""
    ident = (event.get("Actor") or {}).get("ID") or event.get("id") or ""
    if kind == "container" and ident:
        if action == "destroy":
            containers.delete_container_row(host, ident)
        elif not action.startswith(_IGNORED):
            containers.sync_container(host, ident)
        publish(container_group(ident), {"type": "engine.event", "event": event})
    elif kind == "image":
        images.sync_images(host)
    elif kind == "volume" and ident:
        volumes.sync_volume(host, ident)
    elif kind == "network" and ident:
        networks.sync_network(host, ident)
    publish(host_group(host.pk), {"type": "engine.event", "event": event})


class HostListener(threading.Thread):
    """Follow one host's events until stop(); reconnect with backoff when the engine goes away."""

    def __init__(self, host_id: int, max_backoff: float = 30.0) -> None:
        super().__init__(name=f"dockweb-events-{host_id}", daemon=True)
        self.host_id = host_id
        self.max_backoff = max_backoff
        self.ready = threading.Event()  # set once subscribed and reconciled
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stream = None

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()  # unblocks the read in run()
            except Exception:
                pass
        self.join(timeout)

    def run(self) -> None:
        backoff = 1.0
        try:
            while not self._stopping.is_set():
                close_old_connections()
                host = Host.objects.get(pk=self.host_id)
                try:
                    self._follow(host)
                    backoff = 1.0
                except EngineError as e:
                    if self._stopping.is_set():
                        break
                    log.warning("events of host %s: %s; retrying in %.0fs", host.name, e.message, backoff)
                    host.mark(Host.Health.DOWN, e.message)
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
        except Host.DoesNotExist:
            log.info("host %s was deleted: its events listener stops", self.host_id)
        finally:
            client.close_clients()
            connection.close()

    def _follow(self, host: Host) -> None:
        from dockweb.core.reconcile import reconcile_host

        api = client.new_client(host.engine_url, timeout=None).api
        try:
            with client.calling(host, "subscribing to events"):
                stream = api.events(decode=True)
            with self._lock:
                if self._stopping.is_set():
                    stream.close()
                    return
                self._stream = stream
            reconcile_host(host)
            self.ready.set()
            try:
                for event in stream:
                    try:
                        handle_event(host, event)
                    except EngineError as e:
                        # The object may already be gone again; the next event or reconcile settles it.
                        log.info("event %s %s on %s: %s", event.get("Type"), event.get("Action"), host.name,
                                 e.message)
            except ENGINE_EXCEPTIONS as e:
                if not self._stopping.is_set():
                    raise from_docker(e, host.name, "following events") from e
            if not self._stopping.is_set():
                raise EngineUnavailable(f"the engine of host {host.name} closed its events stream")
        finally:
            api.close()
