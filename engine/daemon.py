"""The engine daemon: wire the stores, the launcher and the API server for one engine root."""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass

from engine.config import EngineConfig
from engine.events import EventLog

log = logging.getLogger(__name__)


@dataclass
class Engine:
    config: EngineConfig
    events: EventLog
    images: object
    containers: object
    launcher: object


def build_engine(config: EngineConfig) -> Engine:
    """Open the engine root: start the launcher first (small heap to copy), then load state."""
    from engine.runtime.launcher import Launcher

    config.ensure_dirs()
    launcher = Launcher(config.run_dir)
    from engine.containers.manager import ContainerManager
    from engine.images.bootstrap import ensure_busybox
    from engine.images.store import ImageStore

    events = EventLog()
    images = ImageStore(config, events)
    containers = ContainerManager(config, events, images, launcher)
    containers.load()
    if images.is_empty():
        ensure_busybox(images, config.busybox_path)
    return Engine(config, events, images, containers, launcher)


def serve(config: EngineConfig) -> None:
    """Run the daemon in the foreground until SIGTERM or SIGINT."""
    from engine.api.server import serve_forever

    engine = build_engine(config)
    server = serve_forever(engine, config.socket, config.socket_mode)
    done = threading.Event()

    def stop(signum, _frame):
        log.info("signal %d: shutting down (containers keep running)", signum)
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    t = threading.Thread(target=server.serve_forever, name="api", daemon=True)
    t.start()
    log.info("dockweb engine serving on %s (root %s)", config.socket, config.root)
    print(f"dockweb engine ready: export DOCKER_HOST=unix://{config.socket}", flush=True)
    done.wait()
    server.shutdown()
    engine.containers.close()
    engine.launcher.close()
    try:
        os.unlink(config.socket)
    except OSError:
        pass
