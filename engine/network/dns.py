"""The embedded DNS server: answers container names on user-defined networks at 127.0.0.11 in each container."""

from __future__ import annotations

import ipaddress
import logging
import os
import selectors
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

DNS_ADDRESS = "127.0.0.11"
TTL = 600
QTYPE_A, QTYPE_PTR, QTYPE_AAAA = 1, 12, 28
RCODE_OK, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN = 0, 1, 2, 3


@dataclass(frozen=True)
class Question:
    id: int
    flags: int
    name: str          # lower case, no trailing dot
    qtype: int
    qclass: int
    end: int           # offset just past the question (the rest is EDNS and the like, ignored)


class BadMessage(ValueError):
    pass


def parse_query(data: bytes) -> Question:
    """Parse a DNS query with exactly one question (RFC 1035 4.1); BadMessage otherwise."""
    if len(data) < 12:
        raise BadMessage("short header")
    qid, flags, qd = struct.unpack("!HHH", data[:6])
    if flags & 0x8000 or qd != 1:
        raise BadMessage("not a single-question query")
    labels, pos = [], 12
    while True:
        if pos >= len(data):
            raise BadMessage("truncated name")
        n = data[pos]
        pos += 1
        if n == 0:
            break
        if n & 0xC0 or pos + n > len(data):
            raise BadMessage("compressed or truncated label in a question")
        labels.append(data[pos:pos + n].decode("ascii", "replace"))
        pos += n
    if pos + 4 > len(data):
        raise BadMessage("truncated question")
    qtype, qclass = struct.unpack("!HH", data[pos:pos + 4])
    return Question(qid, flags, ".".join(labels).lower(), qtype, qclass, pos + 4)


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii", "replace")[:63]
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def build_response(query: bytes, q: Question, rcode: int, answers: list[tuple[int, bytes]] = ()) -> bytes:
    """Answer q: the question echoed, then (type, rdata) records for the question's name with our TTL."""
    # QR=1, the query's opcode and RD, AA=1 for names we own, RA=1 as Docker's resolver says.
    flags = 0x8000 | (q.flags & 0x7900) | 0x0080 | (0x0400 if rcode == RCODE_OK else 0) | rcode
    header = struct.pack("!HHHHHH", q.id, flags, 1, len(answers), 0, 0)
    body = query[12:q.end]
    for rtype, rdata in answers:
        body += struct.pack("!HHHIH", 0xC00C, rtype, 1, TTL, len(rdata)) + rdata
    return header + body


def a_record(ip: str) -> tuple[int, bytes]:
    return QTYPE_A, ipaddress.IPv4Address(ip).packed


def ptr_record(name: str) -> tuple[int, bytes]:
    return QTYPE_PTR, _encode_name(name)


def reverse_ip(name: str) -> str | None:
    """Turn "4.0.18.172.in-addr.arpa" into "172.18.0.4"; None for anything else."""
    suffix = ".in-addr.arpa"
    if not name.endswith(suffix):
        return None
    parts = name[: -len(suffix)].split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return None
    return ".".join(reversed(parts))


# resolve(container id, name, qtype) -> list of A addresses (own name, [] = known name without this type),
# or None when the name is not ours; reverse(container id, ip) -> a name or None.
Resolver = Callable[[str, str], "list[str] | None"]
Reverser = Callable[[str, str], "str | None"]
Upstreams = Callable[[str], "list[str]"]


class DnsServer:
    """One thread reads every container's UDP socket; unknown names are forwarded to the upstream servers."""

    def __init__(self, resolve: Resolver, reverse: Reverser, upstreams: Upstreams, forward: bool = True) -> None:
        self.resolve = resolve
        self.reverse = reverse
        self.upstreams = upstreams
        self.forward = forward
        self._sel = selectors.DefaultSelector()
        self._socks: dict[str, socket.socket] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._pending: list[tuple[str, socket.socket | None]] = []
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dns-forward")
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="dns", daemon=True)
        self._thread.start()

    def add(self, cid: str, sock: socket.socket) -> None:
        """Serve queries arriving on sock (bound at 127.0.0.11:53 in the container's namespace) for cid."""
        sock.setblocking(False)
        with self._lock:
            self._pending.append((cid, sock))
        os.write(self._wake_w, b"a")

    def remove(self, cid: str) -> None:
        with self._lock:
            self._pending.append((cid, None))
        os.write(self._wake_w, b"r")

    def serves(self, cid: str) -> bool:
        with self._lock:
            return cid in self._socks or any(c == cid and s is not None for c, s in self._pending)

    def close(self) -> None:
        self._closing = True
        os.write(self._wake_w, b"x")
        self._pool.shutdown(wait=False)

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for cid, sock in pending:
            old = self._socks.pop(cid, None)
            if old is not None:
                self._sel.unregister(old)
                old.close()
            if sock is not None:
                self._socks[cid] = sock
                self._sel.register(sock, selectors.EVENT_READ, cid)

    def _loop(self) -> None:
        while not self._closing:
            for key, _ in self._sel.select():
                if key.data is None:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    self._apply_pending()
                    continue
                try:
                    data, addr = key.fileobj.recvfrom(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as e:
                    log.debug("dns socket of %s: %s", key.data, e)
                    continue
                try:
                    self._answer(key.data, key.fileobj, data, addr)
                except Exception:
                    log.exception("answering a DNS query of container %s", key.data)
        for s in self._socks.values():
            s.close()

    def _answer(self, cid: str, sock: socket.socket, data: bytes, addr) -> None:
        try:
            q = parse_query(data)
        except BadMessage:
            if len(data) >= 2:
                sock.sendto(data[:2] + struct.pack("!HHHHH", 0x8000 | RCODE_FORMERR, 0, 0, 0, 0), addr)
            return
        if q.qclass != 1:
            sock.sendto(build_response(data, q, RCODE_SERVFAIL), addr)
            return
        if q.qtype == QTYPE_PTR:
            ip = reverse_ip(q.name)
            name = self.reverse(cid, ip) if ip else None
            if name is not None:
                sock.sendto(build_response(data, q, RCODE_OK, [ptr_record(name)]), addr)
                return
        else:
            ips = self.resolve(cid, q.name)
            if ips is not None:
                answers = [a_record(ip) for ip in ips] if q.qtype == QTYPE_A else []
                sock.sendto(build_response(data, q, RCODE_OK, answers), addr)
                return
        servers = self.upstreams(cid) if self.forward else []
        if not servers:
            sock.sendto(build_response(data, q, RCODE_SERVFAIL), addr)
            return
        self._pool.submit(self._forward, servers, sock, data, q, addr)

    def _forward(self, servers: list[str], sock: socket.socket, data: bytes, q: Question, addr) -> None:
        """Relay the query to each upstream in turn (2 s each) from the daemon's own namespace."""
        for server in servers:
            family = socket.AF_INET6 if ":" in server else socket.AF_INET
            try:
                with socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as up:
                    up.settimeout(2.0)
                    up.connect((server, 53))
                    up.send(data)
                    while True:
                        reply = up.recv(4096)
                        if reply[:2] == data[:2]:
                            sock.sendto(reply, addr)
                            return
            except OSError as e:
                log.debug("forwarding %s to %s: %s", q.name, server, e)
        try:
            sock.sendto(build_response(data, q, RCODE_SERVFAIL), addr)
        except OSError:
            pass
