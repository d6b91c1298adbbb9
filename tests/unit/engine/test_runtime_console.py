"""The console socket: the init makes the pty and sends its master; the supervisor receives it or sees EOF."""

import fcntl
import os
import socket
import struct
import termios
import time

import pytest

from engine.runtime import init
from engine.runtime.supervisor import receive_console


def test_tty_group_gid_reads_the_tty_group(tmp_path):
    group = tmp_path / "group"
    group.write_text("root:x:0:\nttyish:x:7:\ntty:x:5:\nuser:x:1000:\n")
    assert init.tty_group_gid(str(group), root=str(tmp_path)) == 5


def test_without_a_tty_group_the_devpts_gid_is_kept(tmp_path):
    group = tmp_path / "group"
    group.write_text("root:x:0:\ntty:x:bad:\n")
    assert init.tty_group_gid(str(group), root=str(tmp_path)) == -1
    assert init.tty_group_gid(str(tmp_path / "missing"), root=str(tmp_path)) == -1


def test_a_group_file_on_another_filesystem_than_root_is_not_read(tmp_path):
    # An image could point /etc/group at a "regular file" of procfs or sysfs: only the root filesystem counts.
    group = tmp_path / "group"
    group.write_text("tty:x:5:\n")
    assert init.tty_group_gid(str(group), root="/proc") == -1


def test_a_fifo_as_etc_group_does_not_hang_the_init(tmp_path):
    fifo = tmp_path / "group"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert init.tty_group_gid(str(fifo), root=str(tmp_path)) == -1
    assert time.monotonic() - started < 1


def test_receive_console_returns_the_sent_fd():
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    socket.send_fds(theirs, [b"\0"], [w])
    os.close(w)
    fd = receive_console(ours, timeout=5)
    try:
        assert fd is not None and not os.get_inheritable(fd)
        os.write(fd, b"through the socket")
        assert os.read(r, 100) == b"through the socket"
    finally:
        os.close(fd)
        os.close(r)
        theirs.close()
    assert ours.fileno() == -1  # closed


def test_receive_console_is_none_when_the_sender_died_first():
    ours, theirs = socket.socketpair()
    theirs.close()
    assert receive_console(ours, timeout=5) is None


def test_receive_console_times_out():
    ours, theirs = socket.socketpair()
    try:
        with pytest.raises(TimeoutError):
            receive_console(ours, timeout=0.1)
    finally:
        theirs.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="chowning the slave to the tty group needs root")
def test_setup_console_sends_the_master_and_makes_the_slave_the_controlling_stdio():
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            init.setup_console(theirs.fileno(), {"consoleSize": {"height": 7, "width": 9}, "user": {"uid": 0}},
                               mount_console=False)  # fmt: skip
            size = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
            ctty = os.open("/dev/tty", os.O_RDWR)  # only works with a controlling terminal
            os.write(1, f"{os.ttyname(0)} {os.ttyname(2)} {size[0]}x{size[1]} {os.getsid(0) == os.getpid()}\n".encode())
            os.close(ctty)
            os._exit(0)
        except BaseException as e:  # noqa: BLE001
            os.write(2, repr(e).encode())
            os._exit(1)
    theirs.close()
    master = receive_console(ours, timeout=10)
    try:
        assert master is not None
        out = b""
        while b"\n" not in out:
            out += os.read(master, 1000)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    finally:
        if master is not None:
            os.close(master)
    slave, slave2, size, leader = out.decode().replace("\r", "").split()
    assert slave.startswith("/dev/pts/") and slave2 == slave
    assert (size, leader) == ("7x9", "True")
