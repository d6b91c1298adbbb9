"""The embedded DNS server's wire format: queries parsed, answers built as resolvers expect them."""

from __future__ import annotations

import struct

import pytest

from engine.network import dns


def query(name: str, qtype: int = dns.QTYPE_A, qid: int = 0x1234) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


def test_a_query_is_parsed_case_insensitively():
    q = dns.parse_query(query("Web.MyNet"))
    assert (q.id, q.name, q.qtype, q.qclass) == (0x1234, "web.mynet", dns.QTYPE_A, 1)


@pytest.mark.parametrize("data", [b"", b"\x00" * 11, struct.pack("!HHHHHH", 1, 0x8100, 1, 0, 0, 0) + b"\0\0\1\0\1",
                                  struct.pack("!HHHHHH", 1, 0x0100, 2, 0, 0, 0) + b"\0\0\1\0\1",
                                  struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x05ab"])
def test_bad_messages_are_refused(data):
    with pytest.raises(dns.BadMessage):
        dns.parse_query(data)


def test_an_answer_echoes_the_question_and_carries_a_records():
    data = query("web")
    q = dns.parse_query(data)
    resp = dns.build_response(data, q, dns.RCODE_OK, [dns.a_record("172.18.0.2"), dns.a_record("172.18.0.3")])
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", resp[:12])
    assert (qid, qd, an, ns, ar) == (0x1234, 1, 2, 0, 0)
    assert flags & 0x8000 and flags & 0x0100 and flags & 0x0080 and flags & 0x000F == 0
    assert resp[12:q.end] == data[12:]
    first = resp[q.end:q.end + 16]
    assert struct.unpack("!HHHIH", first[:12]) == (0xC00C, dns.QTYPE_A, 1, dns.TTL, 4)
    assert first[12:] == bytes([172, 18, 0, 2])


def test_an_unknown_name_gets_the_rcode_and_no_answer():
    data = query("nosuch")
    resp = dns.build_response(data, dns.parse_query(data), dns.RCODE_SERVFAIL)
    flags, an = struct.unpack("!H", resp[2:4])[0], struct.unpack("!H", resp[6:8])[0]
    assert flags & 0x000F == dns.RCODE_SERVFAIL and an == 0


def test_reverse_names_map_to_addresses():
    assert dns.reverse_ip("4.0.18.172.in-addr.arpa") == "172.18.0.4"
    assert dns.reverse_ip("x.0.18.172.in-addr.arpa") is None
    assert dns.reverse_ip("example.com") is None
    assert dns.ptr_record("web.n1")[1] == b"\x03web\x02n1\x00"
