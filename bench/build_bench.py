#!/usr/bin/env python3
"""Benchmark dockweb's image builder and save/load against a private dockerd, side by side, in one interleaved run.

Both daemons build the same Dockerfile and context from the same busybox rootfs bytes, through the same docker CLI
(dockerd with its legacy builder: DOCKER_BUILDKIT=0; every build with --network none).

Cases:
  cold     build with no cache at all (the image, its intermediate images and the build cache removed first)
  cached   the same build again: every step a cache hit
  copy     after a one-line change to one file of the context: the COPY and the steps after it run again
  save     `docker save` of a ~200 MiB image (random content, so nothing compresses or dedups) to a file
  load     `docker load` of that file into the daemon it was saved from, after `docker rmi` (a real load)

Target: dockweb/dockerd <= 0.5 for each build case. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.daemon_harness import EngineDaemon, EngineNotReady  # noqa: E402
from tests.integration.dockerd_harness import DockerdUnavailable, PrivateDockerd  # noqa: E402

BENCH = "dockweb-bench-build"
BASE = "dockweb-bench/busybox:latest"
BIG = "dockweb-bench/big:latest"
TARGET = "dockweb-bench/app:latest"

DOCKERFILE = f"""FROM {BASE}
RUN mkdir -p /opt/gen && for i in $(seq 1 200); do echo "generated line $i" > /opt/gen/f$i; done
RUN dd if=/dev/urandom of=/opt/blob bs=1024 count=2048 2>/dev/null && sha1sum /opt/blob > /opt/blob.sha1
ENV APP_HOME=/app
WORKDIR /app
COPY . /app
RUN find /app -type f | wc -l > /app/.count && cat /app/.count
CMD ["cat", "/app/.count"]
"""


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def make_rootfs_tar(path: Path, extra_mb: int = 0, seed: int = 1) -> None:
    """Write busybox's rootfs tar (the engine's own bootstrap bytes), plus extra_mb MiB of random files."""
    import io
    import tarfile

    from engine.images.bootstrap import build_rootfs_tar

    data = build_rootfs_tar(Path("/bin/busybox"))
    if not extra_mb:
        path.write_bytes(data)
        return
    rng = random.Random(seed)
    with open(path, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        with tarfile.open(fileobj=io.BytesIO(data)) as src:
            for m in src.getmembers():
                tf.addfile(m, src.extractfile(m) if m.isfile() else None)
        d = tarfile.TarInfo("data/")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        for i in range(0, extra_mb, 16):     # 16 MiB files: random bytes, so nothing compresses or dedups
            blob = rng.randbytes(min(16, extra_mb - i) << 20)
            ti = tarfile.TarInfo(f"data/random-{i // 16:03d}.bin")
            ti.size, ti.mode = len(blob), 0o644
            tf.addfile(ti, io.BytesIO(blob))


def make_context(ctx: Path, files: int, seed: int = 2) -> Path:
    """A realistic small build context: `files` source-like files in nested dirs; return the file we edit."""
    rng = random.Random(seed)
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / ".dockerignore").write_text("*.tmp\nbuild/\n")
    words = ["alpha", "beta", "gamma", "delta", "return", "import", "def", "class", "value", "self", "if", "for"]
    for i in range(files):
        d = ctx / "src" / f"pkg{i % 12:02d}" / f"mod{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) for _ in range(rng.randint(10, 120))]
        (d / f"file{i:04d}.py").write_text("\n".join(lines) + "\n")
    (ctx / "README.md").write_text("bench app\n")
    (ctx / "notes.tmp").write_text("ignored\n")
    edited = ctx / "src" / "pkg00" / "mod0" / "file0000.py"
    return edited


class Daemon:
    """One system behind the docker CLI."""

    name = ""
    env: dict = {}

    def docker(self, *args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        r = subprocess.run(["docker", *args], env=self.env, capture_output=True, timeout=timeout, **kwargs)
        if check and r.returncode != 0:
            err = r.stderr.decode(errors="replace") if isinstance(r.stderr, bytes) else r.stderr
            raise RuntimeError(f"{self.name}: docker {' '.join(args[:3])} exited {r.returncode}: {err.strip()[-1500:]}")
        return r

    def import_tar(self, tar: Path, ref: str) -> None:
        with open(tar, "rb") as f:
            self.docker("import", "--change", 'CMD ["sh"]', "-", ref, stdin=f)

    def forget_build(self) -> None:
        """Remove the built image, its intermediate images and any build cache: the next build is cold."""
        self.docker("rmi", "-f", TARGET, check=False)
        self.docker("builder", "prune", "-af", check=False)
        # Legacy builder: intermediate images left dangling by an earlier failed build.
        dangling = self.docker("images", "-q", "-f", "dangling=true", check=False, text=True).stdout.split()
        if dangling:
            self.docker("rmi", "-f", *dangling, check=False)

    def build(self, ctx: Path) -> float:
        t0 = time.perf_counter()
        self.docker("build", "-q", "--network", "none", "-t", TARGET, str(ctx), text=True)
        return (time.perf_counter() - t0) * 1000

    def close(self) -> None:
        pass


class Dockweb(Daemon):
    name = "dockweb"

    def __init__(self) -> None:
        self.daemon = EngineDaemon.create(cgroup_prefix=BENCH, python=sys.executable, startup_timeout=60)
        self.env = self.daemon.env

    def start(self) -> None:
        log(f"starting the dockweb engine on {self.daemon.socket}")
        try:
            self.daemon.start()
        except EngineNotReady as e:
            self.close()
            raise SystemExit(f"bench: the dockweb engine is not ready:\n{e}") from None

    def close(self) -> None:
        problems = self.daemon.cleanup()
        if problems:
            log("dockweb cleanup left: " + "; ".join(problems))


class Dockerd(Daemon):
    name = "dockerd"

    def __init__(self, work: Path) -> None:
        self.peer = PrivateDockerd(work / "dockerd", prefix=BENCH)
        self.env = dict(self.peer.env, DOCKER_BUILDKIT="0")

    def start(self) -> None:
        log(f"starting a private dockerd on {self.peer.socket}")
        try:
            self.peer.start()
        except DockerdUnavailable as e:
            raise SystemExit(f"bench: {e}") from None

    def close(self) -> None:
        for problem in self.peer.stop():
            log(f"dockerd cleanup: {problem}")


def stats(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


def bench_builds(daemons: list[Daemon], ctx: Path, edited: Path, warmup: int, runs: int) -> tuple[dict, dict]:
    """Interleave cold, cached and copy-change builds per round; return (results, errors by system)."""
    samples: dict = {case: {d.name: [] for d in daemons} for case in ("cold", "cached", "copy")}
    errors: dict[str, str] = {}
    original = edited.read_text()
    for i in range(warmup + runs):
        for d in daemons:
            if d.name in errors:
                continue
            try:
                edited.write_text(original)
                d.forget_build()
                cold = d.build(ctx)
                cached = d.build(ctx)
                edited.write_text(original + f"# round {i}\n")
                copy = d.build(ctx)
                if i == 0:
                    out = d.docker("run", "--rm", "--network", "none", TARGET, text=True).stdout.strip()
                    log(f"{d.name}: built image reports {out} files in /app")
            except RuntimeError as e:
                errors[d.name] = str(e)
                log(f"{d.name}: build failed, leaving the build cases out for it: {e}")
                continue
            if i >= warmup:
                samples["cold"][d.name].append(cold)
                samples["cached"][d.name].append(cached)
                samples["copy"][d.name].append(copy)
    edited.write_text(original)
    results = {case: {n: stats(s) for n, s in by.items() if s} for case, by in samples.items()}
    return results, errors


def bench_save_load(daemons: list[Daemon], big_tar: Path, work: Path, runs: int) -> dict:
    """Time docker save to a file and docker load of it after rmi, interleaved; the image holds random bytes."""
    samples: dict = {case: {d.name: [] for d in daemons} for case in ("save", "load", "save+load")}
    for d in daemons:
        d.import_tar(big_tar, BIG)
    archive = work / "big-save.tar"
    for _ in range(runs):
        for d in daemons:
            archive.unlink(missing_ok=True)
            t0 = time.perf_counter()
            d.docker("save", "-o", str(archive), BIG)
            t_save = (time.perf_counter() - t0) * 1000
            d.docker("rmi", BIG)
            t0 = time.perf_counter()
            d.docker("load", "-q", "-i", str(archive))
            t_load = (time.perf_counter() - t0) * 1000
            samples["save"][d.name].append(t_save)
            samples["load"][d.name].append(t_load)
            samples["save+load"][d.name].append(t_save + t_load)
    size = archive.stat().st_size if archive.exists() else 0
    archive.unlink(missing_ok=True)
    out = {case: {n: stats(s) for n, s in by.items() if s} for case, by in samples.items()}
    out["archive_bytes"] = size
    return out


def report(results: dict) -> None:
    def row(label: str, doc: dict) -> None:
        dw, dk = doc.get("dockweb"), doc.get("dockerd")
        for name, s in (("dockweb", dw), ("dockerd", dk)):
            if s:
                print(f"{label:<40} {name:<8} median {s['median']:9.1f} ms  min {s['min']:9.1f}  "
                      f"max {s['max']:9.1f}  (n={s['n']})")
        if dw and dk:
            print(f"{'':<40} ratio dockweb/dockerd (median) {dw['median'] / dk['median']:.3f} (target <= 0.5)")
    builds = results.get("builds") or {}
    for case, label in (("cold", "build, cold (no cache)"), ("cached", "build, fully cached"),
                        ("copy", "build after a one-file change (COPY)")):
        if case in builds:
            row(label, builds[case])
    for system, err in (results.get("build_errors") or {}).items():
        print(f"{'build':<40} {system:<8} not measured: {err.splitlines()[0][:200]}")
    sl = results.get("save_load")
    if sl:
        mib = sl["archive_bytes"] / 2**20
        for case in ("save", "load", "save+load"):
            row(f"docker {case} ({mib:.0f} MiB archive)", sl[case])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed rounds of the three builds per system")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--files", type=int, default=300, help="files in the build context")
    ap.add_argument("--save-runs", type=int, default=3, help="timed save/load rounds per system")
    ap.add_argument("--big-mb", type=int, default=200, help="random content of the save/load image, MiB")
    ap.add_argument("--cases", default="build,saveload", help="build, saveload, or both (comma-separated)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (daemons, namespaces)")
    if shutil.which("docker") is None:
        raise SystemExit("bench: the docker CLI is not on PATH")
    cases = set(args.cases.split(","))
    work = Path(tempfile.mkdtemp(prefix="dwbuildbench-"))
    daemons: list[Daemon] = []
    failed = False
    try:
        base_tar = work / "busybox.tar"
        make_rootfs_tar(base_tar)
        daemons = [Dockweb(), Dockerd(work)]
        for d in daemons:
            d.start()
            d.import_tar(base_tar, BASE)
        # The load average says how shared the machine was: ratios hold within a run, absolute times do not.
        results: dict = {"machine": {"kernel": os.uname().release, "cpus": os.cpu_count(),
                                     "loadavg_start": os.getloadavg()},
                         "context_files": args.files}
        if "build" in cases:
            ctx = work / "ctx"
            edited = make_context(ctx, args.files)
            log(f"timing builds: {args.warmup} warmup + {args.runs} rounds of cold, cached, copy-change")
            results["builds"], results["build_errors"] = bench_builds(daemons, ctx, edited, args.warmup, args.runs)
            failed = bool(results["build_errors"])
        if "saveload" in cases:
            big_tar = work / "big.tar"
            make_rootfs_tar(big_tar, extra_mb=args.big_mb)
            log(f"timing save/load of a {args.big_mb} MiB random image, {args.save_runs} rounds")
            results["save_load"] = bench_save_load(daemons, big_tar, work, args.save_runs)
            big_tar.unlink(missing_ok=True)
        results["machine"]["loadavg_end"] = os.getloadavg()
        report(results)
        print("load average (1, 5, 15 min) at start {:.2f} {:.2f} {:.2f}, at end {:.2f} {:.2f} {:.2f}".format(
            *results["machine"]["loadavg_start"], *results["machine"]["loadavg_end"]))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for d in reversed(daemons):
            try:
                d.close()
            except Exception as e:  # noqa: BLE001 - clean the rest anyway
                log(f"closing {d.name}: {e}")
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
