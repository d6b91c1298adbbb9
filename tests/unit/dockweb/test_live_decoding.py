"""The live streams' decoding: multiplexed and raw log bodies, chunked bodies, RFC 3339 times, stats samples."""

from __future__ import annotations

import struct

from dockweb.live.engine import Dechunker, LogDecoder, parse_time
from dockweb.live.streams import sample_from_stats


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


def test_multiplexed_frames_split_anywhere_decode_to_lines():
    body = frame(1, b"2026-11-27T20:00:00.000000001Z hello\n") + frame(2, "2026-11-27T20:00:00.5Z é\n".encode())
    d = LogDecoder(tty=False)
    lines = []
    for i in range(len(body)):
        lines += d.feed(body[i:i + 1])
    assert lines == [("2026-11-27T20:00:00.000000001Z", "out", "hello"), ("2026-11-27T20:00:00.5Z", "err", "é")]


def test_raw_tty_lines_keep_a_partial_line_until_its_end():
    d = LogDecoder(tty=True)
    assert d.feed(b"2026-11-27T20:00:00Z a\r\n2026-11-27T20:00:01Z b") == [("2026-11-27T20:00:00Z", "out", "a\r")]
    assert d.feed(b"c\n") == [("2026-11-27T20:00:01Z", "out", "bc")]


def test_chunked_body_decodes_across_blocks():
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    d = Dechunker()
    out = b"".join(d.feed(body[i:i + 3]) for i in range(0, len(body), 3))
    assert out == b"hello world" and d.done


def test_rfc3339_times_parse_to_nanoseconds():
    assert parse_time("1970-01-01T00:00:01.000000002Z") == 1_000_000_002
    assert parse_time("1970-01-01T01:00:01.5+01:00") == 1_500_000_000
    assert parse_time("not a time") == 0


def test_cpu_percent_is_computed_as_the_docker_cli_does():
    doc = {"read": "2026-11-27T20:00:00Z",
           "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
           "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
           "memory_stats": {"usage": 1000, "limit": 4000, "stats": {"total_inactive_file": 200}},
           "networks": {"eth0": {"rx_bytes": 5, "tx_bytes": 7}, "eth1": {"rx_bytes": 1, "tx_bytes": 1}},
           "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 10}, {"op": "Write", "value": 20},
                                                          {"op": "read", "value": 1}]},
           "pids_stats": {"current": 3}}
    s = sample_from_stats(doc)
    assert s["cpu"] == 40.0  # 200 / 1000 * 2 cpus * 100
    assert (s["mem"], s["mem_limit"], s["net_rx"], s["net_tx"]) == (800, 4000, 6, 8)
    assert (s["blk_read"], s["blk_write"], s["pids"]) == (11, 20, 3)
    assert s["t"] == parse_time("2026-11-27T20:00:00Z") / 1e9
