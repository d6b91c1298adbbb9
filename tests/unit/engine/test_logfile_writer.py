"""The json-file writer: Docker's line format, line splitting, rotation."""

import json

from engine.runtime.logfile import (MAX_ENTRY, LineSplitter, LogWriter, format_time, log_files, open_log, parse_time,
                                    read_entries)

T0 = 1_700_000_000_123_456_789


def lines_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_entry_is_docker_json_with_rfc3339_nano_time(tmp_path):
    w = LogWriter(tmp_path / "c.log")
    w.write("stderr", b"hello \"x\"\n", T0)
    w.close()
    raw = (tmp_path / "c.log").read_text()
    assert raw == '{"log":"hello \\"x\\"\\n","stream":"stderr","time":"2023-11-14T22:13:20.123456789Z"}\n'


def test_time_format_round_trips_and_parses_offsets():
    assert parse_time(format_time(T0)) == T0
    assert parse_time("2023-11-14T22:13:20.5Z") == 1_700_000_000_500_000_000
    assert parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000_000_000_000
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000_000_000_000


def test_splitter_writes_one_entry_per_line_and_keeps_partial_lines(tmp_path):
    w = LogWriter(tmp_path / "c.log")
    s = LineSplitter(w)
    s.feed("stdout", b"one\ntw", T0)
    s.feed("stderr", b"err\n", T0 + 1)
    s.feed("stdout", b"o\nthree", T0 + 2)
    assert [e["log"] for e in lines_of(tmp_path / "c.log")] == ["one\n", "err\n", "two\n"]
    s.flush(T0 + 3)
    entries = lines_of(tmp_path / "c.log")
    assert entries[-1] == {"log": "three", "stream": "stdout", "time": format_time(T0 + 3)}


def test_splitter_cuts_long_lines_at_16k_like_docker(tmp_path):
    w = LogWriter(tmp_path / "c.log")
    s = LineSplitter(w)
    s.feed("stdout", b"a" * (MAX_ENTRY * 2 + 10) + b"\n", T0)
    logs = [e["log"] for e in lines_of(tmp_path / "c.log")]
    assert logs == ["a" * MAX_ENTRY, "a" * MAX_ENTRY, "a" * 10 + "\n"]


def test_bytes_that_are_not_utf8_survive_the_round_trip(tmp_path):
    w = LogWriter(tmp_path / "c.log")
    w.write("stdout", b"\xff\xfe caf\xc3\xa9\n", T0)
    w.close()
    assert list(read_entries(tmp_path / "c.log")) == [("stdout", b"\xff\xfe caf\xc3\xa9\n", T0)]


def test_rotation_keeps_max_files_and_reads_oldest_first(tmp_path):
    path = tmp_path / "c.log"
    w = LogWriter(path, max_size=300, max_files=3)
    for i in range(40):
        w.write("stdout", f"line {i:02d}\n".encode(), T0 + i)
    w.close()
    files = log_files(path)
    assert [f.name for f in files] == ["c.log.2", "c.log.1", "c.log"]
    assert all(f.stat().st_size <= 300 for f in files)
    got = [data for _, data, _ in read_entries(path)]
    numbers = [int(d.split()[1]) for d in got]
    assert numbers == list(range(numbers[0], 40))  # contiguous, newest kept, oldest dropped
    assert numbers[0] > 0


def test_single_file_log_starts_over_when_full(tmp_path):
    path = tmp_path / "c.log"
    w = LogWriter(path, max_size=200, max_files=1)
    for i in range(20):
        w.write("stdout", f"line {i:02d}\n".encode(), T0 + i)
    w.close()
    assert [f.name for f in log_files(path)] == ["c.log"]
    assert path.stat().st_size <= 200
    assert list(read_entries(path))[-1][1] == b"line 19\n"


def test_writer_appends_to_an_existing_log_and_counts_its_size(tmp_path):
    path = tmp_path / "c.log"
    w = LogWriter(path, max_size=10_000, max_files=2)
    w.write("stdout", b"first\n", T0)
    w.close()
    w = LogWriter(path, max_size=10_000, max_files=2)
    assert w.size == path.stat().st_size
    w.write("stdout", b"second\n", T0 + 1)
    w.close()
    assert [d for _, d, _ in read_entries(path)] == [b"first\n", b"second\n"]


def test_splitter_cuts_a_long_unterminated_line_as_it_grows_and_keeps_the_rest(tmp_path):
    w = LogWriter(tmp_path / "c.log")
    s = LineSplitter(w)
    s.feed("stdout", b"b" * (MAX_ENTRY - 1), T0)
    assert (tmp_path / "c.log").read_text() == ""
    s.feed("stdout", b"bb", T0)
    s.feed("stdout", b"\nnext\n", T0)
    assert [e["log"] for e in lines_of(tmp_path / "c.log")] == ["b" * MAX_ENTRY, "b\n", "next\n"]


def test_lines_of_one_read_share_its_time_and_streams_stay_apart(tmp_path):
    w = LogWriter(tmp_path / "c.log")
    s = LineSplitter(w)
    s.feed("stdout", b"par", T0)
    s.feed("stderr", b"e1\ne2\n", T0 + 5)
    s.feed("stdout", b"tial\n", T0 + 9)
    entries = lines_of(tmp_path / "c.log")
    assert [(e["stream"], e["log"], e["time"]) for e in entries] == [
        ("stderr", "e1\n", format_time(T0 + 5)), ("stderr", "e2\n", format_time(T0 + 5)),
        ("stdout", "partial\n", format_time(T0 + 9))]


def test_a_writer_adopts_a_log_opened_earlier_and_appends_to_it(tmp_path):
    path = tmp_path / "c.log"
    path.write_bytes(b"")
    fd = open_log(str(path))  # the supervisor opens the log at start, makes its writer at the first output
    w = LogWriter(str(path), max_size=300, max_files=2, fd=fd)
    for i in range(20):
        w.write("stdout", f"line {i}\n".encode(), 1_700_000_000_000_000_000)
    w.close()
    assert [d for _, d, _ in read_entries(path)][-1] == b"line 19\n"
    assert [p.name for p in log_files(path)] == ["c.log.1", "c.log"]
