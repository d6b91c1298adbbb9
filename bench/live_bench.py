#!/usr/bin/env python3
"""Benchmark the live streams end to end: engine -> Daphne (Redis channel layer) -> a websocket client.

It starts an engine daemon (the test harness: temporary root, own network namespace), a private redis-server,
and `daphne dockweb.asgi:application` on a loopback port with a fresh SQLite database, logs a user in, and measures:

- throughput: a container writes --lines numbered log lines as fast as it can (`yes | head | cat -n`); one
  websocket client on its logs counts lines/s from the first to the last line and checks that every line came,
  once, in order; the CPU time per delivered line of each process (daphne, engine, redis, the client), which
  depends far less on the machine's load than lines/s; then the engine's own follow rate, read straight from its
  socket, for comparison;
- latency: a container writes one line every 50 ms; receive time minus the line's engine timestamp, p50 and p95;
- sharing: 50 clients on one container's logs; the web process's open connections to the engine (ESTAB unix
  sockets of the daphne pid, from `ss`) should be 1, and back to what it was once the last one closed;
- echo: keystroke-to-echo round trip in an exec terminal (`sh` on a pty), p50 and p95;
- memory: VmRSS of the daphne process at the start and at the end, and its peak (VmHWM).

It reports; it never asserts a timing.

    .venv/bin/python bench/live_bench.py [--lines 1000000] [--echo 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LINE = "log-line-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Return a memory figure of pid in KiB from /proc (VmRSS now, VmHWM the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def engine_connections(pid: int, engine_socket: str) -> int:
    """Count pid's connections to the engine's socket (from `ss`: peers of the engine's accepted sockets)."""
    out = subprocess.run(["ss", "-xpn"], capture_output=True, text=True).stdout.splitlines()
    # The engine binds a temporary name beside its socket and renames it: ss shows the name it bound.
    directory, name = os.path.split(engine_socket)
    engine_peers = {line.split()[7] for line in out if len(line.split()) > 7
                    and line.split()[4].startswith(directory + "/") and name in line.split()[4]}
    return sum(1 for line in out if f"pid={pid}," in line and len(line.split()) > 5
               and line.split()[5] in engine_peers)


def setup_django(tmp: Path, redis_url: str) -> dict:
    env = {"DJANGO_SETTINGS_MODULE": "dockweb.settings", "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
           "DOCKWEB_CHANNEL_LAYER": "redis", "REDIS_URL": redis_url, "DOCKWEB_SECRET_KEY": "bench-" + "x" * 50,
           "DOCKWEB_ALLOWED_HOSTS": "127.0.0.1,localhost", "DOCKWEB_STATIC_ROOT": str(tmp / "static"),
           "DOCKWEB_LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    (tmp / "static").mkdir()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return env


def make_world(engine_url: str):
    from django.contrib.auth import get_user_model
    from django.test import Client

    from dockweb.accounts.models import Membership, Team
    from dockweb.hosts.models import Host

    host = Host.objects.create(name="local", engine_url=engine_url)
    team = Team.objects.create(slug="bench", name="bench")
    user = get_user_model().objects.create_user("bench")
    Membership.objects.create(user=user, team=team, role="operator")
    client = Client()
    client.force_login(user)
    return host, client.cookies["sessionid"].value


def run_container(host, name: str, command: list[str]) -> str:
    from dockweb.containers import services
    from dockweb.core import client

    api = client.engine_client(host).api
    cid = api.create_container("busybox", command=command, name=name, labels={"dockweb.team": "bench"})["Id"]
    api.start(cid)
    services.sync_container(host, cid)
    return cid


async def ws(port: int, path: str, session: str):
    import websockets

    return await websockets.connect(f"ws://127.0.0.1:{port}{path}", origin=f"http://127.0.0.1:{port}",
                                    additional_headers={"Cookie": f"sessionid={session}"}, max_size=None,
                                    max_queue=None, compression=None)


def cpu_seconds(pid: int) -> float:
    """Return the user+system CPU time pid has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_named(name: str) -> list[int]:
    """Return the pids of this process's children whose command is name (the private redis-server)."""
    me, found = str(os.getpid()), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if rest[1] == me and comm == name:
            found.append(int(stat.parent.name))
    return found


async def throughput(port, host, session, lines: int, pids: dict[str, int]) -> dict:
    # Numbered lines (`cat -n`): the client checks that every line arrives, once, in order, not only a count.
    script = f"sleep 2; yes {LINE} | head -n {lines} | cat -n; exec sleep 3600"
    cid = await asyncio.to_thread(run_container, host, "flood", ["sh", "-c", script])
    sock = await ws(port, f"/ws/hosts/{host.pk}/containers/{cid}/logs/?tail=0", session)
    got, first, last, skipped, expected, broken = 0, None, None, 0, 1, 0
    cpu_before = None
    while got < lines:
        try:
            msg = json.loads(await asyncio.wait_for(sock.recv(), 60 if first is None else 5))
        except asyncio.TimeoutError:
            break
        if msg["type"] == "skipped":
            skipped += 1
        if msg["type"] != "lines":
            continue
        if first is None:
            first = time.monotonic()
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        batch = msg["lines"]
        head, tail = int(batch[0]["l"].split("\t", 1)[0]), int(batch[-1]["l"].split("\t", 1)[0])
        if head != expected or tail != head + len(batch) - 1:
            broken += 1
        expected = tail + 1
        got += len(batch)
        last = time.monotonic()
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()} if cpu_before else {}
    await sock.close()
    # The engine alone, no web process in between: a follow of the same log from the beginning (tail=all) read
    # straight from its socket, until the last line.
    from dockweb.live import engine as raw

    start, n = time.monotonic(), 0
    async with contextlib.aclosing(raw.log_lines(host.engine_url, cid, follow=True, tail="all")) as batches:
        async for batch in batches:
            n += len(batch)
            if batch[-1][2].startswith(f"{lines:6d}\t"):
                break
    engine_rate = n / (time.monotonic() - start)
    seconds = (last - first) if first is not None and last > first else float("nan")
    return {"lines": got, "seconds": seconds, "rate": got / seconds, "engine_read_rate": engine_rate,
            "engine_lines": n, "skipped": skipped, "in_order": broken == 0 and got == lines,
            "cpu_us_per_line": {name: v / max(got, 1) * 1e6 for name, v in cpu.items()}}


async def latency(port, host, session, samples: int = 100) -> tuple[dict, str]:
    from dockweb.live.engine import parse_time

    cid = await asyncio.to_thread(run_container, host, "ticker", ["sh", "-c", "while true; do echo tick; usleep 50000; done"])
    await asyncio.sleep(0.5)
    sock = await ws(port, f"/ws/hosts/{host.pk}/containers/{cid}/logs/?tail=0", session)
    delays = []
    while len(delays) < samples:
        msg = json.loads(await asyncio.wait_for(sock.recv(), 10))
        now = time.time_ns()
        if msg["type"] == "lines":
            delays += [(now - parse_time(line["t"])) / 1e6 for line in msg["lines"]]
    await sock.close()
    return {"p50_ms": statistics.median(delays), "p95_ms": sorted(delays)[int(len(delays) * 0.95)]}, cid


async def sharing(port, host, session, cid: str, pid: int, clients: int, sock_path: str) -> dict:
    # The previous case's socket has just closed: let the web process finish with it first.
    before, settle = engine_connections(pid, sock_path), time.monotonic()
    while before and time.monotonic() - settle < 5:
        await asyncio.sleep(0.05)
        before = engine_connections(pid, sock_path)
    socks = [await ws(port, f"/ws/hosts/{host.pk}/containers/{cid}/logs/?tail=10", session) for _ in range(clients)]
    await asyncio.sleep(1.0)
    for s in socks:  # every client receives
        while json.loads(await asyncio.wait_for(s.recv(), 10))["type"] != "lines":
            pass
    during = engine_connections(pid, sock_path)
    for s in socks:
        await s.close()
    # The web process handles the 50 disconnects after the close handshakes: give it time, and say how long.
    closed_at = time.monotonic()
    after = engine_connections(pid, sock_path)
    while after > before and time.monotonic() - closed_at < 10:
        await asyncio.sleep(0.05)
        after = engine_connections(pid, sock_path)
    return {"clients": clients, "engine_connections_before": before, "during": during, "after": after,
            "after_seconds": time.monotonic() - closed_at}


async def echo(port, host, session, rounds: int) -> dict:
    cid = await asyncio.to_thread(run_container, host, "shell", ["sleep", "3600"])
    sock = await ws(port, f"/ws/hosts/{host.pk}/containers/{cid}/exec/", session)
    await sock.send(json.dumps({"type": "start", "cmd": ["sh"], "cols": 80, "rows": 24}))
    assert json.loads(await sock.recv())["type"] == "session"
    await asyncio.sleep(0.5)
    while True:  # drain the prompt
        try:
            await asyncio.wait_for(sock.recv(), 0.2)
        except asyncio.TimeoutError:
            break
    times = []
    for i in range(rounds):
        key = b"abcdefghij"[i % 10:i % 10 + 1]
        start = time.perf_counter()
        await sock.send(key)
        while True:
            data = await asyncio.wait_for(sock.recv(), 5)
            if isinstance(data, bytes) and key in data:
                break
        times.append((time.perf_counter() - start) * 1000)
        if i % 60 == 59:
            await sock.send(b"\x15")  # ^U: keep the line short
            await asyncio.wait_for(sock.recv(), 5)
    await sock.close()
    return {"p50_ms": statistics.median(times), "p95_ms": sorted(times)[int(len(times) * 0.95)]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--echo", type=int, default=300)
    ap.add_argument("--clients", type=int, default=50)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("the engine daemon needs root")
        return 1
    from tests.integration.daemon_harness import EngineDaemon
    from tests.unit.dockweb.support import free_port, redis_server, stop_process, wait_for_port

    tmp = Path(tempfile.mkdtemp(prefix="dockweb-bench-live-"))
    daemon = EngineDaemon.create(cgroup_prefix="dockweb-bench-live")
    daphne = None
    try:
        daemon.start()
        with redis_server() as redis_url:
            env = setup_django(tmp, redis_url)
            host, session = make_world(daemon.base_url)
            port = free_port()
            daphne = subprocess.Popen([str(REPO / ".venv/bin/daphne"), "-b", "127.0.0.1", "-p", str(port),
                                       "dockweb.asgi:application"], cwd=REPO, env={**os.environ, **env},
                                      stdout=open(tmp / "daphne.log", "wb"), stderr=subprocess.STDOUT)
            wait_for_port(port, daphne, "daphne")
            rss_start = rss_kib(daphne.pid)
            print("load     average over 1 minute at the start: %.2f (%d cores)" % (os.getloadavg()[0], os.cpu_count()),
                  flush=True)

            async def all_cases():
                lat, ticker = await latency(port, host, session)
                print(f"latency  write->browser p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms "
                      f"(target p50 < 50 ms)", flush=True)
                share = await sharing(port, host, session, ticker, daphne.pid, args.clients, str(daemon.socket))
                print(f"sharing  {share['clients']} clients on one container's logs: web->engine connections "
                      f"before {share['engine_connections_before']}, during {share['during']}, "
                      f"after {share['after']} ({share['after_seconds']:.2f} s after the last close) "
                      f"(target: 1 during, back to before after)", flush=True)
                ech = await echo(port, host, session, args.echo)
                print(f"echo     keystroke->echo p50 {ech['p50_ms']:.2f} ms, p95 {ech['p95_ms']:.2f} ms "
                      f"(target p50 < 20 ms)", flush=True)
                pids = {"daphne": daphne.pid, "engine": daemon.pid, "bench client": os.getpid()}
                pids.update({"redis": pid for pid in children_named("redis-server")})
                thr = await throughput(port, host, session, args.lines, pids)
                print(f"logs     {thr['lines']:,} of {args.lines:,} lines "
                      f"({'all, in order' if thr['in_order'] else 'NOT all in order'}) in {thr['seconds']:.2f} s = "
                      f"{thr['rate']:,.0f} lines/s to one websocket client (target >= 100,000); "
                      f"{thr['skipped']} skipped notices", flush=True)
                print(f"         CPU per delivered line: " + ", ".join(
                      f"{name} {us:.1f} us" for name, us in thr["cpu_us_per_line"].items()), flush=True)
                print(f"engine   alone (a follow from its socket, no web process): {thr['engine_lines']:,} lines "
                      f"at {thr['engine_read_rate']:,.0f} lines/s", flush=True)

            asyncio.run(all_cases())
            rss_end, peak = rss_kib(daphne.pid), rss_kib(daphne.pid, "VmHWM")
            print(f"memory   daphne VmRSS {rss_start / 1024:.1f} MiB at start, {rss_end / 1024:.1f} MiB at the end, "
                  f"peak {peak / 1024:.1f} MiB")
            print("load     average over 1 minute at the end: %.2f (%d cores)" % (os.getloadavg()[0], os.cpu_count()))
    finally:
        if daphne is not None:
            stop_process(daphne)
        from dockweb.core import client

        client.close_clients()
        problems = daemon.cleanup()
        if problems:
            print("engine cleanup left: " + "; ".join(problems))
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
