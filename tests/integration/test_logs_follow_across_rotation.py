"""A log follow reads every line across json-file rotation, however fast the container writes.

The follower must continue from the file it was reading into the files the writer rotated after it, in order,
even when the writer rotated several times while the follower was still busy with an older file.
"""

import threading

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration]

N = 60_000
# 64 KiB files, enough of them to keep the whole log: every line is still on disk, so none may be missed.
LOG_OPTS = ["--log-opt", "max-size=64k", "--log-opt", "max-file=200"]
SCRIPT = f"sleep 1.5; seq 1 {N}"


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split()]


def assert_complete(got: list[int]) -> None:
    missing = sorted(set(range(1, N + 1)) - set(got))
    assert len(got) == N and not missing, (
        f"{len(got)} lines of {N}; {len(missing)} missing (first {missing[:5]}); in order: {got == sorted(got)}")
    assert got == list(range(1, N + 1)), "every line arrived, but out of order"


def test_docker_logs_follow_reads_every_line_of_a_fast_writer_across_rotation(engine):
    d = engine.docker
    cid = d("run", "-d", "--name", "flood-cli", *LOG_OPTS, "busybox", "sh", "-c", SCRIPT).stdout.strip()
    try:
        out = d("logs", "-f", cid, timeout=120)
        assert out.returncode == 0, out.stderr
        rotated = list(engine.root.glob(f"containers/{cid}/container-json.log.*"))
        assert len(rotated) > 10, "the log did not rotate: the test proves nothing"
        assert_complete(numbers(out.stdout))
    finally:
        d("rm", "-f", cid)


def test_api_follow_reads_every_line_of_a_fast_writer_across_rotation(engine):
    client = engine.client()
    log_config = {"Type": "json-file", "Config": {"max-size": "64k", "max-file": "200"}}
    c = client.containers.run("busybox", ["sh", "-c", SCRIPT], detach=True, name="flood-api",
                              log_config=log_config)
    try:
        chunks: list[bytes] = []
        reader = threading.Thread(target=lambda: chunks.extend(c.logs(stream=True, follow=True)))
        reader.start()
        reader.join(120)
        assert not reader.is_alive(), "the follow did not end when the container exited"
        assert_complete(numbers(b"".join(chunks).decode()))
    finally:
        c.remove(force=True)


def test_a_tail_of_a_rotated_log_then_follow_misses_nothing(engine):
    """tail=N reads back across rotated files, then the follow continues from exactly where the tail ended."""
    client = engine.client()
    log_config = {"Type": "json-file", "Config": {"max-size": "64k", "max-file": "200"}}
    script = f"seq 1 {N // 2}; sleep 2; seq {N // 2 + 1} {N}"
    c = client.containers.run("busybox", ["sh", "-c", script], detach=True, name="flood-tail",
                              log_config=log_config)
    try:
        import time

        time.sleep(1.0)  # the first half is written and rotated over many files
        got = numbers(b"".join(c.logs(stream=True, follow=True, tail=N // 4)).decode())
        expected = list(range(N // 2 - N // 4 + 1, N + 1))
        assert got == expected, f"{len(got)} lines, first {got[:3]}, expected {len(expected)} from {expected[0]}"
    finally:
        c.remove(force=True)
