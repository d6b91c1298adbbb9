"""A log follower reads every line across rotation: it never skips a rotated file it has not finished."""

import os
import threading
import time

from engine.runtime.logfile import LogWriter, entry_batches, follow_entries, read_entries, scan_lines, encode_entry

T0 = 1_700_000_000_000_000_000


def lines(n, start=0):
    return [f"line {i}\n".encode() for i in range(start, start + n)]


def write(w, datas):
    for data in datas:
        w.write("stdout", data, time.time_ns())


def test_a_follower_paused_while_the_writer_rotates_many_times_reads_every_line(tmp_path):
    path = tmp_path / "c.log"
    w = LogWriter(path, max_size=600, max_files=20)
    write(w, lines(5))
    state = {"running": True}
    gen = follow_entries(path, lambda: state["running"], poll=0.01)
    got = [next(gen)[1]]  # the follower holds the first file open and is now paused
    write(w, lines(100, 5))  # many rotations (fewer than max_files) while it does not read
    assert len(list(tmp_path.glob("c.log.*"))) > 5
    state["running"] = False
    got += [d for _, d, _ in gen]
    w.close()
    assert got == lines(105)


def test_a_follower_finishes_its_file_and_the_next_even_after_its_own_was_deleted(tmp_path):
    path = tmp_path / "c.log"
    w = LogWriter(path, max_size=600, max_files=2)
    write(w, lines(5))
    state = {"running": True}
    gen = follow_entries(path, lambda: state["running"], poll=0.01)
    got = [next(gen)[1]]
    # Two rotations while the follower is paused: its own file is deleted (it holds it open), the next one is
    # now c.log.1, and a third one is being written.
    first, n, rotations = os.stat(path).st_ino, 5, 0
    while rotations < 2:
        write(w, [f"line {n}\n".encode()])
        n += 1
        inode = os.stat(path).st_ino
        if inode != first:
            rotations, first = rotations + 1, inode
    write(w, [f"line {n}\n".encode()])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.log", "c.log.1"]
    state["running"] = False
    got += [d for _, d, _ in gen]
    w.close()
    assert got == lines(n + 1)


def test_a_fast_writer_thread_and_a_follower_agree_on_every_line(tmp_path):
    path = tmp_path / "c.log"
    w = LogWriter(path, max_size=20_000, max_files=150)
    total = 30_000
    done = threading.Event()

    def produce():
        for start in range(0, total, 50):
            w.write_lines([encode_entry("stdout", d, time.time_ns()) for d in lines(50, start)])
        done.set()

    thread = threading.Thread(target=produce)
    gen = follow_entries(path, lambda: not done.is_set(), poll=0.005)
    thread.start()
    got = [d for _, d, _ in gen]
    thread.join()
    w.close()
    assert len(list(tmp_path.glob("c.log.*"))) > 90
    assert got == lines(total)


def test_since_reads_back_only_to_the_first_newer_entry_across_rotated_files(tmp_path):
    path = tmp_path / "c.log"
    w = LogWriter(path, max_size=500, max_files=50)
    for i in range(100):
        w.write("stdout", f"m{i}\n".encode(), T0 + i * 1000)
    w.close()
    assert len(list(tmp_path.glob("c.log.*"))) > 5
    assert [d for _, d, _ in read_entries(path, since_ns=T0 + 37_000)] == [f"m{i}\n".encode() for i in range(37, 100)]
    got = [d for _, d, _ in read_entries(path, since_ns=T0 + 37_000, until_ns=T0 + 60_000, tail=5)]
    assert got == [f"m{i}\n".encode() for i in range(56, 61)]


def test_batches_carry_the_stored_time_and_a_tail_of_zero_then_follow_shows_only_new_lines(tmp_path):
    path = tmp_path / "c.log"
    w = LogWriter(path)
    w.write("stderr", b"old\n", T0)
    state = {"running": True}
    gen = entry_batches(path, tail=0, follow=True, is_running=lambda: state["running"], poll=0.01,
                        idle_tick=0.01)
    assert next(gen) == []  # an idle tick: the follow has started (generators start at their first next())
    w.write("stdout", b"new\n", T0 + 1)
    assert next(gen) == [("stdout", b"new\n", b"2023-11-14T22:13:20.000000001Z")]
    state["running"] = False
    assert all(batch == [] for batch in gen)
    w.close()


def test_scan_round_trips_what_the_writer_encodes():
    datas = [b"plain\n", b"no newline", b'quote " and \\ backslash\n', b"tab\there\n", "caf\u00e9 \u2603\n".encode(),
             b"\xff\xfe not utf-8\n", b"literal \\n at the end\\n", b"", b"\n", b"x" * 16384]
    encoded = [encode_entry("stdout" if i % 2 else "stderr", d, T0 + i).rstrip("\n").encode() for i, d in
               enumerate(datas)]
    got = scan_lines(encoded + [b'{"log":"torn'])
    assert [d for _, d, _ in got] == datas
    assert [s for s, _, _ in got] == ["stdout" if i % 2 else "stderr" for i in range(len(datas))]
    assert got[3][2] == b"2023-11-14T22:13:20.000000003Z"


def test_scan_accepts_other_key_orders_short_times_and_raw_utf8():
    line = b'{"stream":"stderr","time":"2023-11-14T22:13:20.5Z","log":"hi\\n"}'
    assert scan_lines([line]) == [("stderr", b"hi\n", b"2023-11-14T22:13:20.500000000Z")]
    # Docker itself writes UTF-8 as is, not as \u escapes
    line = '{"log":"caf\u00e9\\t\\n","stream":"stdout","time":"2023-11-14T22:13:20.000000000Z"}'.encode()
    assert scan_lines([line]) == [("stdout", "caf\u00e9\t\n".encode(), b"2023-11-14T22:13:20.000000000Z")]
