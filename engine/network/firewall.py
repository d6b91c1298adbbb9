"""iptables rules for bridges and published ports: computed whole from the engine's state, applied atomically."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from dataclasses import dataclass

from engine.errors import SystemFailure

log = logging.getLogger(__name__)

# Our chains; each is redefined (flushed and refilled) by every apply, in one iptables-restore transaction,
# so the rules always equal the state and a crash leaves nothing a restart does not replace.
NAT_CHAIN = "DOCKWEB"
POST_CHAIN = "DOCKWEB-POSTROUTING"
FORWARD_CHAIN = "DOCKWEB-FORWARD"
ISOLATION_CHAIN = "DOCKWEB-ISOLATION"
RAW_CHAIN = "DOCKWEB-RAW"

# (table, builtin chain, rule args): the jumps into our chains, added once if missing.
JUMPS = (
    ("nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", NAT_CHAIN]),
    ("nat", "OUTPUT", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", NAT_CHAIN]),
    ("nat", "POSTROUTING", ["-j", POST_CHAIN]),
    ("filter", "FORWARD", ["-j", FORWARD_CHAIN]),
    ("raw", "PREROUTING", ["-j", RAW_CHAIN]),
)


@dataclass(frozen=True)
class BridgeRules:
    name: str          # Linux bridge
    subnet: str        # "172.18.0.0/16"
    internal: bool
    masquerade: bool   # NAT traffic leaving the host (off for internal networks and when the operator says so)


@dataclass(frozen=True)
class DnatRule:
    bridge: str
    proto: str
    host_ip: str       # "0.0.0.0" = every local address
    host_port: int
    container_ip: str
    container_port: int


def render(bridges: list[BridgeRules], dnats: list[DnatRule]) -> str:
    """Return the iptables-restore input that makes our chains say exactly this (pure)."""
    nat = [f":{NAT_CHAIN} - [0:0]", f":{POST_CHAIN} - [0:0]"]
    for d in dnats:
        dest = [] if d.host_ip in ("0.0.0.0", "") else [f"-d {d.host_ip}/32"]
        nat.append(" ".join([f"-A {NAT_CHAIN}", *dest, f"-p {d.proto} -m {d.proto} --dport {d.host_port}",
                             f"-j DNAT --to-destination {d.container_ip}:{d.container_port}"]))
    for b in bridges:
        # Loopback clients of a published port: the kernel routes 127.0.0.1 -> container only with
        # route_localnet on the bridge, and the reply needs a source the container can answer.
        nat.append(f"-A {POST_CHAIN} -s 127.0.0.0/8 -o {b.name} -j MASQUERADE")
        # A container reaching a published port of its own bridge through the host: without this the reply
        # would go container-to-container directly and never be un-NATed.
        nat.append(f"-A {POST_CHAIN} -s {b.subnet} -o {b.name} -m conntrack --ctstate DNAT -j MASQUERADE")
        if b.masquerade and not b.internal:
            nat.append(f"-A {POST_CHAIN} -s {b.subnet} ! -o {b.name} -j MASQUERADE")
    flt = [f":{FORWARD_CHAIN} - [0:0]", f":{ISOLATION_CHAIN} - [0:0]"]
    flt.append(f"-A {FORWARD_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    for b in bridges:
        if b.internal:
            flt.append(f"-A {FORWARD_CHAIN} -i {b.name} ! -o {b.name} -j DROP")
            flt.append(f"-A {FORWARD_CHAIN} -o {b.name} ! -i {b.name} -j DROP")
    # Published ports are reachable from every network, as through Docker's userland proxy.
    flt.append(f"-A {FORWARD_CHAIN} -m conntrack --ctstate DNAT -j ACCEPT")
    for b in bridges:
        flt.append(f"-A {FORWARD_CHAIN} -i {b.name} ! -o {b.name} -j {ISOLATION_CHAIN}")
        flt.append(f"-A {ISOLATION_CHAIN} -o {b.name} -j DROP")
    for b in bridges:
        flt.append(f"-A {FORWARD_CHAIN} -i {b.name} -o {b.name} -j ACCEPT")
        if not b.internal:
            flt.append(f"-A {FORWARD_CHAIN} -i {b.name} ! -o {b.name} -j ACCEPT")
    raw = [f":{RAW_CHAIN} - [0:0]"]
    for b in bridges:
        # route_localnet would otherwise let a container send packets to the host's 127.0.0.1 services.
        raw.append(f"-A {RAW_CHAIN} -i {b.name} -d 127.0.0.0/8 -j DROP")
    out = []
    for table, lines in (("raw", raw), ("nat", nat), ("filter", flt)):
        out += [f"*{table}", *lines, "COMMIT"]
    return "\n".join(out) + "\n"


class Firewall:
    """Apply rendered rules with iptables-restore --noflush (only our chains change)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._restore = shutil.which("iptables-restore")
        self._iptables = shutil.which("iptables")
        self._jumps_checked = False
        self._last: str | None = None

    @property
    def available(self) -> bool:
        return bool(self._restore and self._iptables)

    def apply(self, bridges: list[BridgeRules], dnats: list[DnatRule], required: bool = False) -> None:
        """Make the rules equal this state; SystemFailure if iptables fails (or is missing and required)."""
        text = render(bridges, dnats)
        with self._lock:
            if text == self._last:
                return
            if not self.available:
                if required:
                    raise SystemFailure("publishing ports needs iptables (iptables-restore) on the host: "
                                        "install the iptables package")
                log.warning("iptables is not installed: bridge networks have no isolation or NAT rules")
                return
            r = subprocess.run([self._restore, "--noflush", "--wait"], input=text, capture_output=True, text=True,
                               timeout=60)
            if r.returncode != 0:
                self._last = None
                raise SystemFailure(f"applying iptables rules: {r.stderr.strip() or r.stdout.strip()}")
            if not self._jumps_checked:
                self._ensure_jumps()
            self._last = text

    def _ensure_jumps(self) -> None:
        for table, chain, rule in JUMPS:
            check = subprocess.run([self._iptables, "--wait", "-t", table, "-C", chain, *rule], capture_output=True)
            if check.returncode == 0:
                continue
            r = subprocess.run([self._iptables, "--wait", "-t", table, "-I", chain, "1", *rule],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemFailure(f"adding the jump to {rule[-1]} in {table}/{chain}: {r.stderr.strip()}")
        self._jumps_checked = True
