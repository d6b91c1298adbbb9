"""An attach answers its client under the container's lock: a start sent on reading the 101 gets the attach.

`docker run` attaches, waits for the 101, then sends start on another connection at once. When the handler
answered first and registered the attach after, a start landing in between launched the container without
it: the output went to the log only and the CLI printed nothing (exit 0). The manager now calls the
handler's answer under the lock start() takes.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from engine.config import EngineConfig
from engine.containers.manager import ContainerManager
from engine.containers.model import Container
from engine.events import EventLog
from engine.runtime.control import Attach, Started


class RecordingLauncher:
    """Launcher stand-in: records what each start was handed, and pretends the supervisor is this process."""

    def __init__(self) -> None:
        self.starts: list[list[tuple[bool, bool, bool]]] = []

    def start(self, bundle: Path, attaches=()) -> Started:
        self.starts.append([(a.stdout, a.stderr, a.framed) for a in attaches])
        return Started(os.getpid(), os.getpid())


def make_manager(tmp_path: Path) -> tuple[ContainerManager, RecordingLauncher, Container]:
    config = EngineConfig(root=tmp_path / "root")
    launcher = RecordingLauncher()
    mgr = ContainerManager(config, EventLog(), images=None, launcher=launcher)  # type: ignore[arg-type]
    cid = "c0ffee" * 10 + "c0ff"
    bundle = config.containers_dir / cid
    bundle.mkdir(parents=True)
    c = Container(id=cid, name="racer", created_ns=0, image_ref="busybox", image_id="sha256:" + "0" * 64,
                  path="echo", args=["hi"], config={}, host_config={}, bundle=str(bundle))
    c.save()
    mgr._containers[cid] = c
    return mgr, launcher, c


def close_manager(mgr: ContainerManager) -> None:
    """Close the fds a manager opened (its monitor thread never ran here)."""
    for fd in list(mgr._pidfds) + [mgr._watch_r, mgr._watch_w]:
        os.close(fd)


def test_a_start_sent_as_soon_as_the_101_is_out_is_handed_the_attach(tmp_path):
    mgr, launcher, c = make_manager(tmp_path)
    ours, theirs = socket.socketpair()
    start_errors: list[BaseException] = []

    def start() -> None:
        try:
            mgr.start(c.id)
        except BaseException as e:  # noqa: BLE001 - asserted below
            start_errors.append(e)

    starter = threading.Thread(target=start)

    def answer() -> Attach:
        # The client has its 101 now and sends start right away; give that start every chance to overtake.
        starter.start()
        starter.join(0.3)
        assert starter.is_alive(), "start ran while the attach was being answered"
        return Attach(fd=theirs.detach(), stdin=False, stdout=True, stderr=True, framed=True)

    try:
        mgr.attach(c.id, answer)
        starter.join(10)
        assert not start_errors, start_errors
        assert launcher.starts == [[(True, True, True)]]
        assert c.state.status == "running"
    finally:
        ours.close()
        close_manager(mgr)


def test_an_attach_still_waiting_when_its_container_is_removed_ends_the_clients_stream(tmp_path):
    mgr, launcher, c = make_manager(tmp_path)
    ours, theirs = socket.socketpair()
    try:
        mgr.attach(c.id, Attach(fd=theirs.detach(), stdin=False, stdout=True, stderr=True, framed=True))
        mgr.remove(c.id)
        ours.settimeout(5)
        assert ours.recv(1) == b""  # EOF: a `docker attach` on it returns instead of hanging forever
        assert launcher.starts == []
    finally:
        ours.close()
        close_manager(mgr)
