"""Run the events bridge: one listener thread per host, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from dockweb.core.events import HostListener
from dockweb.hosts.models import Host


class Command(BaseCommand):
    help = "Follow every host's engine events and keep the models in step (started by ./dockweb.sh up)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rescan", type=float, default=30.0, help="seconds between looks for new hosts")

    def handle(self, *args, rescan: float, **options) -> None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        listeners: dict[int, HostListener] = {}
        while not stop.is_set():
            for host_id, name in Host.objects.values_list("pk", "name"):
                if host_id not in listeners or not listeners[host_id].is_alive():
                    self.stdout.write(f"following the events of host {name}")
                    listeners[host_id] = HostListener(host_id)
                    listeners[host_id].start()
            stop.wait(rescan)
        for listener in listeners.values():
            listener.stop()
