"""Reading json-file logs: since/until/tail across rotated files, torn lines, follow with rotation."""

import threading
import time

from engine.runtime.logfile import LogWriter, follow_entries, read_entries

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def write_log(path, n, max_size=0, max_files=1):
    w = LogWriter(path, max_size=max_size, max_files=max_files)
    for i in range(n):
        w.write("stdout" if i % 2 == 0 else "stderr", f"m{i}\n".encode(), T0 + i * S)
    w.close()


def test_read_entries_returns_stream_bytes_and_time(tmp_path):
    write_log(tmp_path / "c.log", 3)
    assert list(read_entries(tmp_path / "c.log")) == [
        ("stdout", b"m0\n", T0), ("stderr", b"m1\n", T0 + S), ("stdout", b"m2\n", T0 + 2 * S)]


def test_since_and_until_are_inclusive(tmp_path):
    write_log(tmp_path / "c.log", 10)
    got = [d for _, d, _ in read_entries(tmp_path / "c.log", since_ns=T0 + 3 * S, until_ns=T0 + 5 * S)]
    assert got == [b"m3\n", b"m4\n", b"m5\n"]


def test_tail_reads_the_last_entries_across_rotated_files(tmp_path):
    write_log(tmp_path / "c.log", 60, max_size=400, max_files=5)
    everything = [d for _, d, _ in read_entries(tmp_path / "c.log")]
    assert len(everything) > 12
    assert [d for _, d, _ in read_entries(tmp_path / "c.log", tail=12)] == everything[-12:]
    assert list(read_entries(tmp_path / "c.log", tail=0)) == []
    assert [d for _, d, _ in read_entries(tmp_path / "c.log", tail=10_000)] == everything


def test_tail_with_since_counts_only_matching_entries(tmp_path):
    write_log(tmp_path / "c.log", 10)
    got = [d for _, d, _ in read_entries(tmp_path / "c.log", until_ns=T0 + 4 * S, tail=2)]
    assert got == [b"m3\n", b"m4\n"]


def test_a_torn_last_line_is_skipped(tmp_path):
    write_log(tmp_path / "c.log", 2)
    with open(tmp_path / "c.log", "ab") as f:
        f.write(b'{"log":"half')
    assert len(list(read_entries(tmp_path / "c.log"))) == 2
    assert len(list(read_entries(tmp_path / "c.log", tail=5))) == 2


def test_missing_log_reads_as_empty(tmp_path):
    assert list(read_entries(tmp_path / "nope.log")) == []
    assert list(follow_entries(tmp_path / "nope.log", lambda: False)) == []


def test_follow_yields_history_then_new_entries_through_rotation_until_stopped(tmp_path):
    path = tmp_path / "c.log"
    w = LogWriter(path, max_size=500, max_files=4)
    w.write("stdout", b"old\n", time.time_ns())
    running = threading.Event()
    running.set()

    def produce():
        for i in range(30):
            w.write("stdout", f"new {i}\n".encode(), time.time_ns())
            time.sleep(0.01)
        running.clear()

    got = []
    thread = threading.Thread(target=produce)
    gen = follow_entries(path, running.is_set, poll=0.01)
    got.append(next(gen)[1])
    thread.start()
    got.extend(d for _, d, _ in gen)
    thread.join()
    w.close()
    assert got == [b"old\n"] + [f"new {i}\n".encode() for i in range(30)]
    assert len(list((tmp_path).glob("c.log.*"))) >= 1  # it did rotate while we followed


def test_follow_with_tail_starts_from_the_last_entries(tmp_path):
    write_log(tmp_path / "c.log", 5)
    got = [d for _, d, _ in follow_entries(tmp_path / "c.log", lambda: False, tail=2)]
    assert got == [b"m3\n", b"m4\n"]


def test_follow_waits_for_a_log_that_does_not_exist_yet(tmp_path):
    path = tmp_path / "c.log"
    state = {"running": True}

    def produce():
        time.sleep(0.05)
        w = LogWriter(path)
        w.write("stderr", b"late\n", time.time_ns())
        w.close()
        time.sleep(0.05)
        state["running"] = False

    thread = threading.Thread(target=produce)
    thread.start()
    got = list(follow_entries(path, lambda: state["running"], poll=0.01))
    thread.join()
    assert [(s, d) for s, d, _ in got] == [("stderr", b"late\n")]


def test_follow_yields_idle_ticks_while_nothing_is_written(tmp_path):
    import itertools
    from engine.runtime.logfile import LogWriter, follow_entries
    path = tmp_path / "container-json.log"
    w = LogWriter(path, 1 << 20, 2)
    w.write("stdout", b"one\n", 1)
    got = list(itertools.islice(follow_entries(path, lambda: True, poll=0.01, idle_tick=0.05), 3))
    w.close()
    assert got[0] == ("stdout", b"one\n", 1)
    assert got[1][0] is None and got[2][0] is None
