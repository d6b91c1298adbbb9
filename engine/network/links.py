"""Bridges, veth pairs and addresses through netlink (pyroute2), all from one dedicated thread.

pyroute2 gives every thread its own netlink socket, opened in whatever network namespace the thread is in
at first use. So one worker thread owns every netlink socket: it can step into a container's namespace
(setns), make a socket there, and step back, without any other thread of the daemon ever leaving home.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import secrets
import socket
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from engine.errors import SystemFailure
from engine.network import netns

log = logging.getLogger(__name__)


@dataclass
class Link:
    """The host side of what a container's endpoint needs: its veth, bridge and addresses."""
    bridge: str
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    default_route: bool     # the endpoint that carries the container's default route (not internal)
    mtu: int = 1500
    veth: str = ""          # host-side name, chosen here
    ifname: str = ""        # inside the container (eth0, eth1, ...), chosen here


def new_veth_name() -> str:
    # Random like Docker's: a crash-left veth being destroyed can never collide with a new one.
    return "veth" + secrets.token_hex(4)[:7]


class NetlinkWorker:
    """Run network operations in one thread that owns every pyroute2 socket."""

    def __init__(self) -> None:
        self._q: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="netlink", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error:
            raise SystemFailure(f"opening netlink: {self._error}")

    # ------------------------------------------------------------------ plumbing

    def call(self, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """Run fn(*args) in the worker and return its result (or raise its exception)."""
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        fut: Future = Future()
        self._q.put((fn, args, kwargs, fut))
        return fut.result()

    def close(self) -> None:
        self._q.put(None)

    def _loop(self) -> None:
        try:
            from pyroute2 import IPRoute
            self._home = os.open(netns.SELF_NET, os.O_RDONLY | os.O_CLOEXEC)
            self.ipr = IPRoute()
        except BaseException as e:   # noqa: BLE001 - reported to the constructor
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        while True:
            item = self._q.get()
            if item is None:
                break
            fn, args, kwargs, fut = item
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)
            finally:
                self._check_home()
        self.ipr.close()

    def _check_home(self) -> None:
        # Every operation must end at home; if one could not, no later one may run in the wrong place.
        if os.stat(netns.SELF_NET).st_ino != os.fstat(self._home).st_ino:
            try:
                netns.enter(self._home)
            except OSError:
                log.critical("the netlink worker cannot return to the daemon's network namespace")
                os._exit(70)

    # ------------------------------------------------------------------ bridges (worker thread)

    def ensure_bridge(self, name: str, cidr_ip: str, prefixlen: int, mtu: int) -> None:
        """Create the bridge if missing, give it its gateway address, bring it up; allow DNAT from loopback."""
        self.call(self._ensure_bridge, name, cidr_ip, prefixlen, mtu)

    def _ensure_bridge(self, name: str, ip: str, prefixlen: int, mtu: int) -> None:
        ipr = self.ipr
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            try:
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
            except Exception as e:
                raise SystemFailure(f"creating bridge {name}: {e}") from e
            idx = ipr.link_lookup(ifname=name)
        index = idx[0]
        have = {(a.get("address"), a.get("prefixlen")) for a in ipr.get_addr(index=index, family=socket.AF_INET)}
        if (ip, prefixlen) not in have:
            try:
                ipr.addr("add", index=index, address=ip, prefixlen=prefixlen)
            except Exception as e:
                raise SystemFailure(f"adding {ip}/{prefixlen} to bridge {name}: {e}") from e
        ipr.link("set", index=index, state="up")
        # Published ports on 127.0.0.1 are DNATed to the container: the kernel routes 127/8 out of an
        # interface only with route_localnet (the raw-table rule in firewall.py guards the other direction).
        _write_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")

    def set_ip_forward(self) -> None:
        self.call(_write_sysctl, "net/ipv4/ip_forward", "1")

    def delete_link(self, name: str) -> None:
        self.call(self._delete_link, name)

    def _delete_link(self, name: str) -> None:
        idx = self.ipr.link_lookup(ifname=name)
        if idx:
            try:
                self.ipr.link("del", index=idx[0])
            except Exception as e:
                if getattr(e, "code", None) != errno.ENODEV:
                    raise SystemFailure(f"deleting interface {name}: {e}") from e

    def links(self) -> list[tuple[str, str, str]]:
        """List (name, kind, master name) of the links of the daemon's namespace."""
        return self.call(self._links)

    def _links(self) -> list[tuple[str, str, str]]:
        out, names = [], {}
        raw = list(self.ipr.get_links())
        for msg in raw:
            names[msg["index"]] = msg.get("ifname")
        for msg in raw:
            master = msg.get("master")
            kind = msg.get(("linkinfo", "kind")) or ""
            out.append((msg.get("ifname"), kind, names.get(master, "") if master else ""))
        return out

    def routes(self) -> list[str]:
        """List the IPv4 destinations routed in the daemon's namespace ("a.b.c.d/n"), for IPAM overlap checks."""
        return self.call(self._routes)

    def _routes(self) -> list[str]:
        out = []
        for r in self.ipr.get_routes(family=socket.AF_INET, table=254):
            dst = r.get("dst")
            if dst:
                out.append(f"{dst}/{r['dst_len']}")
        return out

    # ------------------------------------------------------------------ sandboxes (worker thread)

    def create_sandbox(self, path: Path, links: list[Link], dns: bool) -> socket.socket | None:
        """Make a namespace at path with lo up and the given endpoints; return the DNS socket when asked."""
        return self.call(self._create_sandbox, path, links, dns)

    def _create_sandbox(self, path: Path, links: list[Link], dns: bool) -> socket.socket | None:
        from pyroute2 import IPRoute
        inner = None
        dns_sock = None
        try:
            try:
                netns.create(path)
                inner = IPRoute()       # this thread is inside the new namespace: so is the socket
                inner.link("set", index=inner.link_lookup(ifname="lo")[0], state="up")
                if dns:
                    dns_sock = _dns_socket()
            finally:
                netns.enter(self._home)
            for i, link in enumerate(links):
                self._add_endpoint(path, inner, link, f"eth{i}")
            return dns_sock
        except BaseException:
            if dns_sock is not None:
                dns_sock.close()
            self._teardown(path, [link.veth for link in links if link.veth])
            raise
        finally:
            if inner is not None:
                inner.close()

    def add_endpoint(self, path: Path, link: Link, dns: bool) -> socket.socket | None:
        """Connect a running container's namespace to one more bridge; a DNS socket too when asked."""
        return self.call(self._add_endpoint_running, path, link, dns)

    def _add_endpoint_running(self, path: Path, link: Link, dns: bool) -> socket.socket | None:
        from pyroute2 import IPRoute
        with netns.inside(path, self._home):
            inner = IPRoute()
            dns_sock = _dns_socket() if dns else None
        try:
            taken = {msg.get("ifname") for msg in inner.get_links()}
            n = 0
            while f"eth{n}" in taken:
                n += 1
            self._add_endpoint(path, inner, link, f"eth{n}")
            return dns_sock
        except BaseException:
            if dns_sock is not None:
                dns_sock.close()
            raise
        finally:
            inner.close()

    def _add_endpoint(self, path: Path, inner, link: Link, ifname: str) -> None:
        ipr = self.ipr
        bridge = ipr.link_lookup(ifname=link.bridge)
        if not bridge:
            raise SystemFailure(f"bridge {link.bridge} does not exist")
        link.veth = new_veth_name()
        fd = netns.open_ns(path)
        try:
            ipr.link("add", ifname=link.veth, kind="veth", mtu=link.mtu,
                     peer={"ifname": ifname, "net_ns_fd": fd, "address": link.mac, "mtu": link.mtu})
        except Exception as e:
            link.veth = ""
            raise SystemFailure(f"creating the veth pair for {ifname}: {e}") from e
        finally:
            os.close(fd)
        link.ifname = ifname
        host = ipr.link_lookup(ifname=link.veth)[0]
        ipr.link("set", index=host, master=bridge[0], state="up")
        idx = inner.link_lookup(ifname=ifname)[0]
        inner.addr("add", index=idx, address=link.ip, prefixlen=link.prefixlen)
        inner.link("set", index=idx, state="up")
        if link.default_route:
            try:
                inner.route("add", dst="0.0.0.0/0", gateway=link.gateway)
            except Exception as e:
                if getattr(e, "code", None) != errno.EEXIST:
                    raise SystemFailure(f"adding the default route via {link.gateway}: {e}") from e

    def remove_endpoint(self, veth: str) -> None:
        """Delete a host-side veth (its peer in the container goes with it)."""
        self.delete_link(veth)

    def teardown(self, path: Path, veths: list[str]) -> None:
        """Unplug a stopped container: take its veths off the bridges now, let the namespace die with its mount."""
        self.call(self._teardown, path, veths)

    def _teardown(self, path: Path, veths: list[str]) -> None:
        for name in veths:
            # Down is immediate; deleting a veth pair waits for an RCU grace period (tens of ms). The pair
            # disappears with the namespace once the mount below is gone.
            idx = self.ipr.link_lookup(ifname=name)
            if idx:
                try:
                    self.ipr.link("set", index=idx[0], state="down")
                except Exception as e:
                    log.warning("taking %s down: %s", name, e)
        netns.remove(path)

    def dns_socket(self, path: Path) -> socket.socket:
        """Open a DNS socket in an existing sandbox (re-adopting a running container after a daemon restart)."""
        return self.call(self._dns_socket_in, path)

    def _dns_socket_in(self, path: Path) -> socket.socket:
        with netns.inside(path, self._home):
            return _dns_socket()


def _dns_socket() -> socket.socket:
    from engine.network.dns import DNS_ADDRESS
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((DNS_ADDRESS, 53))
    except OSError as e:
        s.close()
        raise SystemFailure(f"binding the embedded DNS server at {DNS_ADDRESS}:53: {e.strerror}") from e
    return s


def _write_sysctl(name: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{name}", "w") as f:
            f.write(value)
    except OSError as e:
        raise SystemFailure(f"setting {name.replace('/', '.')}={value}: {e.strerror}") from e
