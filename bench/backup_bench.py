#!/usr/bin/env python3
"""Benchmark volume backup and restore: dockweb next to host `tar | zstd -1` and the seed's recipe, in one run.

Data: ~1 GiB of mixed files (20,000 small files in 200 directories, half compressible text and half random, plus
four large files, two compressible and two random), generated once from a fixed seed.

Columns:
  host      `tar -C data -cf - . | zstd -1` and `zstd -dc | tar -x` (the target: dockweb >= 0.9x its throughput)
  hostmt    the same with `zstd -1 -T0` (zstd on every core, as dockweb's compressor is): the fair peer on many cores
  hostsync  the same host backup followed by `sync <archive>`: durable, as dockweb's fsynced archive is
  dockweb   the engine library (engine.volumes.backup) on the same directory: write + verify, and restore
  before    with --before FILE: the same, with another copy of engine/volumes/backup.py (e.g. the previous
            commit's, from `git show HEAD:engine/volumes/backup.py`), for before/after figures from one run
  api       POST /dockweb/volumes/{name}/backups and .../restore on a dockweb engine the bench starts
  seed      the seed's recipe (`docker run --rm --volumes-from ... busybox tar cvf /backup/backup.tar /dbdata`
            and `tar xvf ... --strip 1`) on a private dockerd the bench starts; skipped with a message if it cannot

Every case runs --runs times, interleaved; before each timed run, an untimed `sync` (so no run pays for the previous
one's writeback). Each restore goes to a new directory or volume, and all are kept until the end: deleting 20,000
files slows the next 20,000 creates on ext4 for minutes (so --runs 3 needs ~10 GiB free). Data is read from the page
cache, as a backup of a hot volume would be. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine import tarsafe  # noqa: E402
from engine.volumes import backup  # noqa: E402

BENCH = "dockweb-bench-backup"
WORDS = (b"volume backup restore container engine layer image archive manifest checksum stream zstd tar "
         b"overlay cgroup namespace network bridge socket daemon client server request response").split()


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Data

def text_bytes(rng: random.Random, n: int) -> bytes:
    """Return n bytes of compressible text (words, numbers, newlines)."""
    out = bytearray()
    while len(out) < n:
        line = b" ".join(rng.choice(WORDS) for _ in range(12)) + b" %d\n" % rng.getrandbits(32)
        out += line
    return bytes(out[:n])


def make_data(root: Path, small: int, large_mb: int, seed: int = 42) -> int:
    """Create the data set under root; return its total size in bytes."""
    rng = random.Random(seed)
    total = 0
    text_pool = text_bytes(rng, 4 << 20)
    rand_pool = rng.randbytes(4 << 20)
    for i in range(small):
        d = root / f"dir{i % 200:03d}"
        if i < 200:
            d.mkdir(parents=True)
        size = rng.randint(1024, 31 * 1024)
        pool = text_pool if i % 2 else rand_pool
        start = rng.randrange(0, len(pool) - size)
        (d / f"file{i:05d}.dat").write_bytes(pool[start:start + size])
        total += size
    big = root / "big"
    big.mkdir()
    for j in range(4):
        with open(big / f"large{j}.bin", "wb") as f:
            for _ in range(large_mb):
                chunk = text_bytes(rng, 1 << 20) if j % 2 == 0 else rng.randbytes(1 << 20)
                f.write(chunk)
        total += large_mb << 20
    return total


# ---------------------------------------------------------------------------------------------------------------
# Cases

def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def sh(cmd: str, env: dict | None = None) -> None:
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd!r} exited {r.returncode}: {r.stderr.strip()[-1500:]}")


def restore_target(work: Path, key: str) -> Path:
    """A new, empty directory for the next restore of key, beside the previous ones.

    Restores are kept until the bench ends: ext4 will not reuse an inode in the minutes after it was freed
    (recently_deleted() in its inode allocator), so creating 20,000 files right after deleting 20,000 others
    makes every create scan past them, and the previous run's cleanup would be timed as part of this one.
    """
    n = 1
    while (work / f"{key}-restore-{n}").exists():
        n += 1
    path = work / f"{key}-restore-{n}"
    path.mkdir(parents=True)
    return path


class Host:
    name = "host tar|zstd -1"

    def __init__(self, data: Path, work: Path) -> None:
        self.data, self.work = data, work
        self.archive = work / "host.tar.zst"

    def backup(self) -> None:
        sh(f"tar -C {self.data} -cf - . | zstd -1 -q -f -o {self.archive}")

    def prepare_restore(self) -> None:
        self.target = restore_target(self.work, "host")

    def restore(self) -> None:
        sh(f"zstd -dc {self.archive} | tar -x -C {self.target}")


class HostMT(Host):
    """The host backup with zstd on every core (`-T0`); the restore is the host's (zstd decompresses on one)."""
    name = "host tar|zstd -1 -T0"

    def __init__(self, data: Path, work: Path) -> None:
        super().__init__(data, work)
        self.archive = work / "host-mt.tar.zst"

    def backup(self) -> None:
        sh(f"tar -C {self.data} -cf - . | zstd -1 -T0 -q -f -o {self.archive}")

    restore = None


class HostSync(Host):
    """The host backup made durable as dockweb's is (the archive fsynced), for a like-for-like backup figure."""
    name = "host tar|zstd -1 + fsync"

    def __init__(self, data: Path, work: Path) -> None:
        super().__init__(data, work)
        self.archive = work / "host-sync.tar.zst"

    def backup(self) -> None:
        sh(f"tar -C {self.data} -cf - . | zstd -1 -q -f -o {self.archive} && sync {self.archive}")

    restore = None


class Library:
    name = "dockweb (library)"
    key = "lib"

    def __init__(self, data: Path, work: Path, module=backup) -> None:
        self.data, self.work, self.m = data, work, module
        self.archive = work / f"dockweb-{self.key}.tar.zst"

    def produce(self, out):
        return self.m.write_archive(self.data, out, None, volume="bench", tmp_dir=self.work)

    def backup(self) -> None:
        # What BackupStore.create does after quiescing: write + fsync the archive, then its default verification
        # before publishing (read it back and compare checksums).
        self.archive.unlink(missing_ok=True)
        m = self.m
        if hasattr(m, "write_archive_file"):
            _, written = m.write_archive_file(self.archive, "zstd", self.produce)
            ok = m.check_archive_file(self.archive, written)[0]
            if hasattr(written, "xxh3"):
                self.xxh3 = f"{written.xxh3:016x}"      # what the store records, and a restore checks
        else:       # backup.py before the threaded archive writer (a compressing child process)
            with open(self.archive, "wb", buffering=m.CHUNK) as f:
                sink = m.CompressedFile(f, "zstd")
                self.produce(sink)
                crc, size = sink.close()
                f.flush()
                os.fsync(f.fileno())
            ok = m.file_checksums(self.archive)[1:] == (crc, size)
        if not ok:
            raise RuntimeError("verification failed")

    def prepare_restore(self) -> None:
        self.target = restore_target(self.work, self.key)

    def restore(self) -> None:
        kwargs = {"expected_xxh3": self.xxh3} if getattr(self, "xxh3", None) else {}
        self.m.restore_archive(self.archive, "zstd", self.target / "_data", limits=tarsafe.ExtractLimits(),
                               **kwargs)


class Before(Library):
    """The library from another copy of backup.py (--before), loaded under its own module name."""
    name = "dockweb before (library)"
    key = "before"

    def __init__(self, data: Path, work: Path, path: Path) -> None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("backup_before", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["backup_before"] = module       # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
        super().__init__(data, work, module)


class Api:
    """The dockweb engine API on a daemon of its own (volume data copied into its volume first)."""
    name = "dockweb (API)"

    def __init__(self, data: Path, work: Path) -> None:
        from tests.integration.daemon_harness import EngineDaemon

        self.data, self.work = data, work
        self.daemon = EngineDaemon.create(cgroup_prefix=BENCH, python=sys.executable, startup_timeout=60)
        self.backup_id = ""
        self.n = 0

    def start(self) -> None:
        self.daemon.start()
        self.request("POST", "/volumes/create", {"Name": "benchvol"})
        vol = json.loads(self.request("GET", "/volumes/benchvol"))
        dest = Path(vol["Mountpoint"])
        sh(f"cp -a {self.data}/. {dest}/")

    def request(self, method: str, path: str, body: dict | None = None) -> bytes:
        conn = _UnixHTTP(str(self.daemon.socket))
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
        return data

    def stream_result(self, data: bytes) -> dict:
        last = json.loads(data.strip().splitlines()[-1])
        if "error" in last:
            raise RuntimeError(last["error"])
        return last

    def backup(self) -> None:
        if self.backup_id:
            self.request("DELETE", f"/dockweb/backups/{self.backup_id}")
        out = self.stream_result(self.request("POST", "/dockweb/volumes/benchvol/backups",
                                              {"Compression": "zstd", "Consistency": "none"}))
        self.backup_id = out["Backup"]["Id"]

    def restore(self) -> None:
        self.n += 1
        self.stream_result(self.request("POST", f"/dockweb/backups/{self.backup_id}/restore",
                                        {"Volume": f"restored{self.n}"}))

    def close(self) -> None:
        problems = self.daemon.cleanup()
        if problems:
            log("dockweb cleanup left: " + "; ".join(problems))


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=600)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


class Seed:
    """The seed's recipe, unchanged, on a private dockerd (bench/run_container_bench.py starts it)."""
    name = "seed recipe (dockerd)"

    def __init__(self, data: Path, work: Path) -> None:
        from bench.run_container_bench import Dockerd, make_rootfs

        self.data, self.work = data, work
        (work / "seed").mkdir()
        _, tar = make_rootfs(work / "seed")
        self.dockerd = Dockerd(tar, work / "seed")
        self.backup_dir = work / "seed-backup"
        self.backup_dir.mkdir()
        self.n = 0

    def docker(self, *args: str) -> str:
        r = subprocess.run(["docker", *args], env=self.dockerd.env, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {r.stderr.strip()[-800:]}")
        return r.stdout

    def start(self) -> None:
        from bench.run_container_bench import IMAGE
        self.image = IMAGE
        self.dockerd.start()
        self.docker("create", "-v", "/dbdata", "--name", "dbstore", IMAGE, "/bin/sh")
        mp = json.loads(self.docker("inspect", "dbstore"))[0]["Mounts"][0]["Source"]
        sh(f"cp -a {self.data}/. {mp}/")

    def backup(self) -> None:
        self.docker("run", "--rm", "--network", "none", "--volumes-from", "dbstore", "-v",
                    f"{self.backup_dir}:/backup", self.image, "tar", "cf", "/backup/backup.tar", "/dbdata")

    def prepare_restore(self) -> None:
        self.docker("create", "-v", "/dbdata", "--name", f"dbstore{self.n + 2}", self.image, "/bin/sh")

    def restore(self) -> None:
        # The seed's restore step, timed alone (its dbstore2 container is created untimed, as the backup's is).
        self.n += 1
        self.docker("run", "--rm", "--network", "none", "--volumes-from", f"dbstore{self.n + 1}", "-v",
                    f"{self.backup_dir}:/backup", self.image, "sh", "-c",
                    "cd /dbdata && tar xf /backup/backup.tar --strip 1")

    def close(self) -> None:
        try:
            subprocess.run(["docker", "rm", "-f", "-v", "dbstore"], env=self.dockerd.env, capture_output=True,
                           timeout=120)
        except (OSError, subprocess.SubprocessError):
            pass
        self.dockerd.close()


# ---------------------------------------------------------------------------------------------------------------

def _interrupt(signum: int, _frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per case and system (default 3)")
    parser.add_argument("--small", type=int, default=20000, help="small files (default 20000)")
    parser.add_argument("--large-mb", type=int, default=175, help="MiB per large file, four of them (default 175)")
    parser.add_argument("--systems", default="host,hostmt,hostsync,library,api,seed",
                        help="comma list (default: all but before)")
    parser.add_argument("--before", type=Path, help="a copy of engine/volumes/backup.py to time as 'before' "
                        "(adds the before column)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and ({"api", "seed"} & set(args.systems.split(","))):
        parser.error("run as root for the api and seed columns (or --systems host,library)")
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix=f"{BENCH}-", dir="/tmp"))
    systems: list = []
    skipped: dict[str, str] = {}
    results: dict = {}
    try:
        data = work / "data"
        data.mkdir()
        log(f"generating {args.small} small files and 4 x {args.large_mb} MiB in {data}")
        total = make_data(data, args.small, args.large_mb)
        log(f"data: {total / 2**30:.2f} GiB")
        makers = {"host": Host, "hostmt": HostMT, "hostsync": HostSync, "library": Library, "api": Api,
                  "seed": Seed, "before": lambda d, w: Before(d, w, args.before)}
        keys = [s.strip() for s in args.systems.split(",") if s.strip()]
        if args.before and "before" not in keys:
            keys.insert(keys.index("library") if "library" in keys else len(keys), "before")
        for key in keys:
            try:
                system = makers[key](data, work)
                if hasattr(system, "start"):
                    system.start()
                systems.append(system)
            except Exception as e:       # a peer that cannot run here is skipped with the reason
                log(f"skipping {key}: {e}")
                skipped[key] = str(e).splitlines()[0] if str(e) else type(e).__name__
                if "system" in locals() and hasattr(system, "close"):
                    system.close()
        restoring = sum(1 for s in systems if getattr(s, "restore", None) is not None)
        need = total * args.runs * restoring * 11 // 10 + (2 << 30)
        free = shutil.disk_usage(work).free
        if free < need:
            raise SystemExit(f"bench: the restores are kept until the end (see restore_target) and need "
                             f"{need / 2**30:.1f} GiB free in {work.parent}, which has {free / 2**30:.1f} GiB: "
                             "use fewer --runs or --systems")
        samples: dict[str, dict[str, list[float]]] = {s.name: {"backup": [], "restore": []} for s in systems}
        for case in ("backup", "restore"):
            for i in range(args.runs):
                for s in systems:
                    if getattr(s, case) is None:
                        continue
                    prepare = getattr(s, f"prepare_{case}", None)
                    if prepare is not None:
                        prepare()
                    os.sync()       # untimed: no run pays for the previous run's writeback
                    sec = timed(getattr(s, case))
                    samples[s.name][case].append(sec)
                    log(f"{case} {i + 1}/{args.runs} {s.name}: {sec:.2f}s")
        host = Host.name
        print(f"\ndata: {args.small} small files + 4 x {args.large_mb} MiB = {total / 2**20:.0f} MiB; "
              f"median of {args.runs} runs; throughput = data size / time; ratio = system / host throughput")
        print(f"{'system':<24} {'backup s':>9} {'MiB/s':>8} {'ratio':>6}   {'restore s':>9} {'MiB/s':>8} {'ratio':>6}")
        for s in systems:
            row = [f"{s.name:<24}"]
            for case in ("backup", "restore"):
                if not samples[s.name][case]:
                    row.append(f"{'-':>9} {'-':>8} {'-':>6}")
                    continue
                med = statistics.median(samples[s.name][case])
                ref = statistics.median(samples[host][case]) if host in samples else None
                ratio = f"{ref / med:6.2f}" if ref else "     -"
                row.append(f"{med:9.2f} {total / 2**20 / med:8.0f} {ratio}")
            print(" ".join(row[:1]) + " " + "   ".join(row[1:]))
            results[s.name] = {case: {"median_s": statistics.median(v), "samples": v}
                               for case, v in samples[s.name].items() if v}
        for key, why in skipped.items():
            print(f"{key:<24} skipped: {why}")
        if args.json:
            args.json.write_text(json.dumps({"total_bytes": total, "results": results, "skipped": skipped}, indent=1))
        return 0
    finally:
        for s in systems:
            if hasattr(s, "close"):
                try:
                    s.close()
                except Exception as e:
                    log(f"cleanup of {s.name}: {e}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
