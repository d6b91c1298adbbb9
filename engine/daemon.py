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
    volumes: object = None
    backups: object = None
    networks: object = None
    registry: object = None      # engine.registry.Registry: pull, push, login
    builder: object = None       # engine.build.builder.Builder: build, commit, changes, export


def build_engine(config: EngineConfig) -> Engine:
    """Open the engine root: start the launcher first (small heap to copy), then load state."""
    from engine.runtime.launcher import Launcher

    config.ensure_dirs()
    launcher = Launcher(config.run_dir)
    from engine.containers.manager import ContainerManager
    from engine.images.bootstrap import ensure_busybox
    from engine.images.store import ImageStore

    from engine.volumes.store import VolumeStore

    from engine.network.manager import NetworkManager

    events = EventLog()
    images = ImageStore(config, events)
    volumes = VolumeStore(config, events)
    networks = NetworkManager(config, events)
    networks.load()
    containers = ContainerManager(config, events, images, launcher, volumes=volumes, networks=networks)
    volumes.users = containers.volume_users
    containers.load()
    networks.reconcile()     # after load: what no running container owns any more is removed
    # After load: a driver-option volume (tmpfs, bind) a running container still uses keeps its mount.
    volumes.cleanup_mounts(lambda name: [cid for cid, running in containers.containers_using_volume(name)
                                         if running])
    if images.is_empty():
        ensure_busybox(images, config.busybox_path)
    from engine.volumes.backup import BackupStore

    backups = BackupStore(config, events, volumes, containers)
    from engine.registry import Registry

    engine = Engine(config, events, images, containers, launcher, volumes, backups, networks)
    engine.registry = Registry(config, images)
    from engine.build.builder import Builder

    engine.builder = Builder(config, events, images, containers, registry=engine.registry)
    return engine


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
    if engine.networks is not None:
        engine.networks.close()
    engine.launcher.close()
    try:
        os.unlink(config.socket)
    except OSError:
        pass
