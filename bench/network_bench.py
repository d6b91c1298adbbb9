#!/usr/bin/env python3
"""Benchmark dockweb's container networking against a private dockerd, side by side, in one interleaved run.

Each daemon runs in a network namespace this benchmark creates (no packet reaches the machine's interfaces,
no NAT to the outside): dockweb through the test harness, dockerd with its default bridge, iptables and
userland proxy (Docker's defaults) but --ip-masq=false. Both run the same busybox rootfs.

Cases:
  run        `docker run --rm busybox true` on the default bridge network (target: dockweb <= 0.3x dockerd)
  connect    TCP connect + one small HTTP GET to a port published on 127.0.0.1 (busybox httpd in the container)
  throughput download of a large file from that published port, MB/s (target: dockweb >= dockerd)

Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run_container_bench import Dockerd as PeerDockerd, Unavailable, make_rootfs  # noqa: E402
from tests.integration.daemon_harness import EngineDaemon  # noqa: E402
from tests.integration.daemon_harness import call_in_netns as in_netns  # noqa: E402

BENCH = "dockweb-bench-net"
IMAGE = "dockweb-bench/busybox:latest"
SERVE = ("mkdir -p /www && echo ok > /www/small && dd if=/dev/zero of=/www/big bs=1M count={mb} 2>/dev/null "
         "&& exec httpd -f -p 80 -h /www")


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], env: dict | None = None, timeout: float = 120, check: bool = True,
        **kwargs) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {(r.stderr or r.stdout).strip()[-2000:]}")
    return r


def http_get(port: int, path: str, bufsize: int = 1 << 20) -> int:
    """GET http://127.0.0.1:port/path with HTTP/1.0 and return the body size (read to EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        buf = bytearray(bufsize)
        total = 0
        while True:
            n = s.recv_into(buf)
            if not n:
                break
            total += n
    return total


def connect_samples(port: int, n: int) -> tuple[list[float], list[float]]:
    """(TCP connect ms, connect+small GET ms) n times each, interleaving is done by the caller."""
    connects, requests = [], []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        t1 = time.perf_counter_ns()
        s.close()
        connects.append((t1 - t0) / 1e6)
        t0 = time.perf_counter_ns()
        size = http_get(port, "/small", 4096)
        requests.append((time.perf_counter_ns() - t0) / 1e6)
        assert size > 0
    return connects, requests


def throughput(port: int, seconds: float) -> float:
    """Download /big again and again for about `seconds`; return MB/s (10^6 bytes)."""
    total, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        total += http_get(port, "/big")
    return total / (time.perf_counter() - t0) / 1e6


class Daemon:
    name = ""
    netns_path = ""
    env: dict = {}

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return run(["docker", *args], env=self.env, timeout=timeout, check=check)

    def import_image(self, tar: Path) -> None:
        with open(tar, "rb") as f:
            r = subprocess.run(["docker", "import", "--change", 'CMD ["sh"]', "-", IMAGE], stdin=f, env=self.env,
                               capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: docker import failed: {r.stderr.strip()}")


class Dockweb(Daemon):
    name = "dockweb"

    def __init__(self) -> None:
        self.daemon = EngineDaemon.create(cgroup_prefix=BENCH, netns=True, python=sys.executable,
                                          startup_timeout=60)
        self.env = self.daemon.env
        self.netns_path = self.daemon.netns_path

    def start(self, tar: Path) -> None:
        log(f"starting the dockweb engine in network namespace {self.daemon.netns}")
        self.daemon.start()
        self.import_image(tar)

    def close(self) -> None:
        problems = self.daemon.cleanup()
        if problems:
            log("dockweb cleanup left: " + "; ".join(problems))


class Dockerd(Daemon):
    """The container bench's private dockerd, in its own network namespace with Docker's network defaults."""
    name = "dockerd"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.netns = f"{BENCH}-docker-{secrets.token_hex(3)}"
        self.netns_path = f"/run/netns/{self.netns}"
        self.peer: PeerDockerd | None = None
        self.env: dict = {}

    def start(self, tar: Path) -> None:
        self.peer = PeerDockerd(tar, self.work, prefix=BENCH, netns=self.netns)
        self.env = self.peer.env
        try:
            self.peer.start()
        except Unavailable as e:
            raise SystemExit(f"bench: {e}") from None

    def close(self) -> None:
        if self.peer is not None:
            self.peer.close()


def stats(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def bench_run(daemons: list[Daemon], warmup: int, runs: int) -> dict:
    out: dict = {d.name: [] for d in daemons}
    for i in range(warmup + runs):
        for d in daemons:
            t0 = time.perf_counter_ns()
            d.docker("run", "--rm", IMAGE, "true")
            if i >= warmup:
                out[d.name].append((time.perf_counter_ns() - t0) / 1e6)
    return {name: stats(s) for name, s in out.items()}


def bench_ports(daemons: list[Daemon], mb: int, rounds: int, requests: int, seconds: float) -> dict:
    ports: dict[str, int] = {}
    names: dict[str, str] = {}
    for d in daemons:
        port = in_netns(d.netns_path, _free_port)
        names[d.name] = f"{BENCH}-web-{secrets.token_hex(3)}"
        d.docker("run", "-d", "--name", names[d.name], "-p", f"127.0.0.1:{port}:80", IMAGE, "sh", "-c",
                 SERVE.format(mb=mb))
        ports[d.name] = port
    try:
        for d in daemons:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if in_netns(d.netns_path, http_get, ports[d.name], "/big") >= mb << 20:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{d.name}: the published port never served /big")
                time.sleep(0.1)
        conn: dict = {d.name: [] for d in daemons}
        req: dict = {d.name: [] for d in daemons}
        tput: dict = {d.name: [] for d in daemons}
        for _ in range(rounds):
            for d in daemons:
                c, r = in_netns(d.netns_path, connect_samples, ports[d.name], requests)
                conn[d.name] += c
                req[d.name] += r
                tput[d.name].append(in_netns(d.netns_path, throughput, ports[d.name], seconds))
        return {"connect_ms": {n: stats(s) for n, s in conn.items()},
                "request_ms": {n: stats(s) for n, s in req.items()},
                "throughput_MBps": {n: stats(s) for n, s in tput.items()}}
    finally:
        for d in daemons:
            d.docker("rm", "-f", names[d.name], check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(results: dict) -> None:
    def row(label: str, doc: dict, unit: str, better: str) -> None:
        dw, dk = doc.get("dockweb"), doc.get("dockerd")
        for name, s in (("dockweb", dw), ("dockerd", dk)):
            if s:
                print(f"{label:<34} {name:<8} median {s['median']:9.3f} {unit:<5} min {s['min']:9.3f} "
                      f"max {s['max']:9.3f} (n={s['n']})")
        if dw and dk:
            print(f"{'':<34} ratio dockweb/dockerd (median) {dw['median'] / dk['median']:.3f} ({better})")
    if "run" in results:
        row("docker run --rm (default bridge)", results["run"], "ms", "lower is better")
    if "ports" in results:
        p = results["ports"]
        row("TCP connect to 127.0.0.1:PORT", p["connect_ms"], "ms", "lower is better")
        row("connect + GET 3-byte file", p["request_ms"], "ms", "lower is better")
        row("download throughput", p["throughput_MBps"], "MB/s", "higher is better")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="timed `docker run --rm` per daemon")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the published-port cases")
    ap.add_argument("--requests", type=int, default=50, help="connects and small GETs per round")
    ap.add_argument("--seconds", type=float, default=2.0, help="download time per round")
    ap.add_argument("--mb", type=int, default=64, help="size of the downloaded file")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces, daemons)")
    work = Path(tempfile.mkdtemp(prefix="dwnetbench-"))
    daemons: list[Daemon] = []
    try:
        _rootfs, tar = make_rootfs(work)
        daemons = [Dockweb(), Dockerd(work)]
        for d in daemons:
            d.start(tar)
        results: dict = {"machine": {"kernel": os.uname().release, "cpus": os.cpu_count()}}
        log("timing docker run --rm on the default bridge")
        results["run"] = bench_run(daemons, args.warmup, args.runs)
        log("timing the published port")
        results["ports"] = bench_ports(daemons, args.mb, args.rounds, args.requests, args.seconds)
        report(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for d in reversed(daemons):
            try:
                d.close()
            except Exception as e:  # noqa: BLE001 - clean the rest anyway
                log(f"closing {d.name}: {e}")
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
