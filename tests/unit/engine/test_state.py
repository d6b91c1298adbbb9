"""engine/state.py: atomic JSON records, ids and Docker's time formats."""

from __future__ import annotations

import json
import os
import re
import threading
import time

import pytest

from engine.state import new_id, now_ns, parse_time, read_json, rfc3339, write_json

JAN_1_2024 = 1704067200  # 2024-01-01T00:00:00Z


@pytest.fixture
def non_utc_local_time(monkeypatch):
    """Run with a local time zone one hour east of UTC, so a lost time zone shows as an hour's error."""
    monkeypatch.setenv("TZ", "CET-1")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_new_id_is_64_lowercase_hex_digits():
    assert re.fullmatch(r"[0-9a-f]{64}", new_id())


def test_new_ids_differ():
    assert len({new_id() for _ in range(1000)}) == 1000


def test_write_then_read_round_trips(tmp_path):
    record = {"id": "abc", "n": 3, "nested": {"list": [1, 2, None]}, "text": "héllo"}
    write_json(tmp_path / "state.json", record)
    assert read_json(tmp_path / "state.json") == record


def test_write_replaces_the_previous_record(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"v": 1})
    write_json(path, {"v": 2}, fsync=False)
    assert read_json(path) == {"v": 2}


def test_write_leaves_no_temporary_file(tmp_path):
    write_json(tmp_path / "state.json", {"v": 1})
    assert os.listdir(tmp_path) == ["state.json"]


def test_write_is_compact_json(tmp_path):
    write_json(tmp_path / "s.json", {"a": [1, 2]})
    assert (tmp_path / "s.json").read_text() == '{"a":[1,2]}'


def test_write_replaces_by_rename_so_open_readers_keep_the_old_file(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"v": 1})
    with open(path) as reader:
        write_json(path, {"v": 2})
        assert json.load(reader) == {"v": 1}
    assert read_json(path) == {"v": 2}


def test_read_missing_record_returns_the_default(tmp_path):
    assert read_json(tmp_path / "nope.json") is None
    assert read_json(tmp_path / "nope.json", default={}) == {}


def test_read_corrupt_record_raises_instead_of_pretending(tmp_path):
    (tmp_path / "bad.json").write_text('{"half":')
    with pytest.raises(json.JSONDecodeError):
        read_json(tmp_path / "bad.json")


def test_write_into_a_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_json(tmp_path / "gone" / "state.json", {})


def test_concurrent_writers_in_one_process_never_tear_a_record(tmp_path):
    path = tmp_path / "state.json"
    write_json(path, {"n": 0, "pad": ""})
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        for _ in range(200):
            try:
                write_json(path, {"n": n, "pad": "x" * (n * 20000)}, fsync=False)
            except BaseException as e:  # noqa: BLE001 - any failure of the writer is the finding
                errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    torn = 0
    while any(t.is_alive() for t in threads):
        try:
            read_json(path)
        except ValueError:
            torn += 1
    for t in threads:
        t.join()
    assert errors == [] and torn == 0, f"{len(errors)} writer errors ({errors[:1]}), {torn} torn reads"


def test_now_ns_is_unix_nanoseconds():
    assert abs(now_ns() / 1e9 - time.time()) < 5


def test_rfc3339_formats_utc_with_nanoseconds():
    assert rfc3339(JAN_1_2024 * 10**9 + 123456789) == "2024-01-01T00:00:00.123456789Z"


def test_rfc3339_pads_the_nanoseconds_to_nine_digits():
    assert rfc3339(JAN_1_2024 * 10**9 + 5) == "2024-01-01T00:00:00.000000005Z"


def test_rfc3339_of_nothing_is_docker_zero_time():
    assert rfc3339(None) == "0001-01-01T00:00:00Z"
    assert rfc3339(0) == "0001-01-01T00:00:00Z"


def test_rfc3339_does_not_depend_on_the_local_time_zone(non_utc_local_time):
    assert rfc3339(JAN_1_2024 * 10**9) == "2024-01-01T00:00:00.000000000Z"


def test_parse_time_reads_unix_seconds():
    assert parse_time("1704067200") == JAN_1_2024


def test_parse_time_reads_seconds_dot_nanoseconds_as_the_cli_sends_them():
    assert parse_time("1704067200.500000000") == pytest.approx(JAN_1_2024 + 0.5)


def test_parse_time_ignores_surrounding_blanks():
    assert parse_time(" 1704067200 ") == JAN_1_2024


def test_parse_time_reads_rfc3339_in_utc():
    assert parse_time("2024-01-01T00:00:00Z") == JAN_1_2024


def test_parse_time_reads_rfc3339_with_an_offset():
    assert parse_time("2024-01-01T01:00:00+01:00") == JAN_1_2024


def test_parse_time_round_trips_rfc3339_output_to_the_microsecond():
    ns = JAN_1_2024 * 10**9 + 123456789
    assert parse_time(rfc3339(ns)) == pytest.approx(ns / 1e9, abs=1e-6)


def test_parse_time_keeps_the_zone_of_a_fractional_utc_time(non_utc_local_time):
    assert parse_time("2024-01-01T00:00:00.123456789Z") == pytest.approx(JAN_1_2024 + 0.123456, abs=1e-6)


def test_parse_time_keeps_the_offset_of_a_fractional_time():
    assert parse_time("2024-01-01T01:00:00.5+01:00") == pytest.approx(JAN_1_2024 + 0.5)


def test_parse_time_rejects_garbage():
    with pytest.raises(ValueError):
        parse_time("yesterday")
