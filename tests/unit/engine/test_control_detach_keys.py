"""Detach keys on a TTY attach: stripped from stdin, partial matches pass through, framed streams ignore them."""

import os

import pytest

from engine.runtime.supervisor import Client, Proc


@pytest.fixture
def pipe_fd():
    r, w = os.pipe()
    yield w
    os.close(r)
    os.close(w)


def client(fd, framed=False, keys=b"\x10\x11"):
    return Client(Proc(None, True), fd, True, True, True, framed, keys)


def test_the_sequence_detaches_and_only_what_came_before_is_delivered(pipe_fd):
    c = client(pipe_fd)
    assert c.scan_detach(b"ls\n\x10\x11rest") == (b"ls\n", True)


def test_a_sequence_split_across_reads_still_detaches(pipe_fd):
    c = client(pipe_fd)
    assert c.scan_detach(b"abc\x10") == (b"abc", False)
    assert c.scan_detach(b"\x11") == (b"", True)


def test_a_lone_ctrl_p_is_passed_through_once_the_next_byte_differs(pipe_fd):
    c = client(pipe_fd)
    assert c.scan_detach(b"\x10") == (b"", False)
    assert c.scan_detach(b"x") == (b"\x10x", False)
    assert c.scan_detach(b"\x10\x10\x11") == (b"\x10", True)


def test_framed_streams_and_empty_keys_never_detach(pipe_fd):
    assert client(pipe_fd, framed=True).scan_detach(b"\x10\x11") == (b"\x10\x11", False)
    assert client(pipe_fd, keys=b"").scan_detach(b"\x10\x11") == (b"\x10\x11", False)
