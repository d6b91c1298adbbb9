"""Control socket framing: JSON lines with SCM_RIGHTS fds, and the daemon's request() client."""

import os
import socket
import threading

import pytest

from engine.errors import ContainerNotRunning, SystemFailure
from engine.runtime import control


def test_message_and_its_fds_arrive_together():
    a, b = socket.socketpair()
    r, w = os.pipe()
    control.send_msg(a, {"op": "attach", "stdin": True}, [w])
    os.close(w)
    msg, fds = control.MessageReader(b).recv()
    assert msg == {"op": "attach", "stdin": True}
    assert len(fds) == 1
    assert not os.get_inheritable(fds[0])  # received close-on-exec: never leaks into a container
    os.write(fds[0], b"through the passed fd")
    os.close(fds[0])
    assert os.read(r, 100) == b"through the passed fd"
    os.close(r)
    a.close()
    b.close()


def test_reader_buffers_partial_and_multiple_lines():
    a, b = socket.socketpair()
    reader = control.MessageReader(b)
    a.sendall(b'{"n": 1}\n{"n"')
    assert reader.recv() == ({"n": 1}, [])
    a.sendall(b': 2}\n')
    assert reader.recv() == ({"n": 2}, [])
    a.close()
    assert reader.recv() is None
    b.close()


def serve_once(path, reply, seen):
    srv = socket.socket(socket.AF_UNIX)
    dir_fd = os.open(path, os.O_PATH)
    srv.bind(control.short_path(dir_fd, control.SOCKET_NAME))
    os.close(dir_fd)
    srv.listen(1)

    def run():
        conn, _ = srv.accept()
        seen.append(control.MessageReader(conn).recv())
        control.send_msg(conn, reply)
        conn.close()
        srv.close()

    t = threading.Thread(target=run)
    t.start()
    return t


def test_request_works_on_bundle_paths_longer_than_sun_path(tmp_path):
    bundle = tmp_path / ("c" * 120)
    bundle.mkdir()
    seen = []
    t = serve_once(bundle, {"ok": True, "init_pid": 42}, seen)
    r, w = os.pipe()
    reply = control.request(bundle, {"op": "ping"}, [w])
    t.join()
    assert reply == {"ok": True, "init_pid": 42}
    msg, fds = seen[0]
    assert msg == {"op": "ping"} and len(fds) == 1
    for fd in fds + [r, w]:
        os.close(fd)


def test_request_without_a_supervisor_is_container_not_running(tmp_path):
    with pytest.raises(ContainerNotRunning, match=f"container {tmp_path.name} is not running"):
        control.request(tmp_path, {"op": "ping"})
    with pytest.raises(ContainerNotRunning):
        control.request(tmp_path / "gone", {"op": "ping"})


def test_request_to_a_silent_supervisor_times_out(tmp_path):
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(tmp_path / control.SOCKET_NAME))
    srv.listen(1)
    with pytest.raises(SystemFailure, match="did not answer 'ping' within 0.2s"):
        control.request(tmp_path, {"op": "ping"}, timeout=0.2)
    srv.close()
