#!/usr/bin/env python3
"""Benchmark dockweb against its peers side by side on this machine, in one interleaved run.

Cases (see bench/README.md):
  run   `docker run --rm busybox true` on dockweb and on a private dockerd; `runc run` and `crun run` of the same
        rootfs as an OCI bundle
  exec  `docker exec <c> true` into a running container, dockweb vs dockerd
  mem   host memory per idle running container: dockweb supervisors + daemon growth vs containerd-shims +
        dockerd/containerd growth (PSS from /proc/PID/smaps_rollup)

Every system runs the same busybox rootfs bytes. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.daemon_harness import (  # noqa: E402
    EngineDaemon,
    EngineNotReady,
    all_pids,
    cmdline,
    mounts,
    ping,
    remove_cgroups,
    unmount_under,
)

IMAGE = "dockweb-bench/busybox:latest"
BENCH = "dockweb-bench"
ALL_SYSTEMS = ("dockweb", "dockerd", "runc", "crun")


class Unavailable(Exception):
    """A peer cannot run on this machine; the bench goes on without it."""


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], env: dict | None = None, timeout: float = 120, check: bool = True,
        **kwargs) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {(r.stderr or r.stdout).strip()[-2000:]}")
    return r


def pss(pid: int) -> int:
    """Return the proportional set size of one process in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """Return every descendant of pid (by walking /proc/*/stat parent links)."""
    parent_of: dict[int, int] = {}
    for p in all_pids():
        try:
            with open(f"/proc/{p}/stat") as f:
                parent_of[p] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        cur = frontier.pop()
        kids = [p for p, pp in parent_of.items() if pp == cur]
        found += kids
        frontier += kids
    return found


def make_rootfs(work: Path) -> tuple[Path, Path]:
    """Build the busybox rootfs PEERS.md describes and its tar; return (rootfs dir, tar path)."""
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise SystemExit("bench: /bin/busybox is missing (apt-get install busybox-static)")
    rootfs = work / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "etc").mkdir()
    (rootfs / "tmp").mkdir(mode=0o1777)
    os.chmod(rootfs / "tmp", 0o1777)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    # `busybox --install -s` would link to the host path of the binary; relative links work inside too.
    for applet in run([str(busybox), "--list"]).stdout.split():
        if applet != "busybox":
            os.symlink("busybox", rootfs / "bin" / applet)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\n")
    tar = work / "busybox.tar"
    with open(tar, "wb") as out:
        subprocess.run(["tar", "-C", str(rootfs), "-c", "."], stdout=out, check=True)
    return rootfs, tar


@dataclass
class System:
    """One thing to time: a name, the command per case, and how to start and stop it."""

    name: str
    env: dict = field(default_factory=lambda: dict(os.environ))
    run_label: str = "docker run --rm"

    def start(self) -> None:
        pass

    def run_cmd(self, n: int) -> list[str]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class DockerAPISystem(System):
    """A daemon behind the docker CLI: dockweb's engine or a private dockerd."""

    run_args: tuple[str, ...] = ("--network", "none")

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return run(["docker", *args], env=self.env, timeout=timeout, check=check)

    def import_image(self, tar: Path) -> None:
        with open(tar, "rb") as f:
            r = subprocess.run(["docker", "import", "--change", 'CMD ["sh"]', "-", IMAGE], stdin=f, env=self.env,
                               capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: docker import failed: {r.stderr.strip()}")

    def run_cmd(self, n: int) -> list[str]:
        return ["docker", "run", "--rm", *self.run_args, IMAGE, "true"]

    def start_idle(self, name: str) -> str:
        r = self.docker("run", "-d", *self.run_args, "--name", name, IMAGE, "sleep", "3600")
        return r.stdout.strip()

    def remove(self, names: list[str]) -> None:
        if names:
            self.docker("rm", "-f", *names, check=False, timeout=300)

    def daemon_pids(self) -> list[int]:
        raise NotImplementedError

    def container_overhead_pids(self, ids: list[str]) -> list[int]:
        raise NotImplementedError


class Dockweb(DockerAPISystem):
    def __init__(self, tar: Path) -> None:
        super().__init__("dockweb")
        self.tar = tar
        self.daemon = EngineDaemon.create(cgroup_prefix=BENCH, python=sys.executable, startup_timeout=60)
        self.env = self.daemon.env

    def start(self) -> None:
        log(f"starting the dockweb engine on {self.daemon.socket}")
        try:
            self.daemon.start()
        except EngineNotReady as e:
            self.close()
            raise SystemExit(
                f"bench: the dockweb engine is not ready, so there is nothing to compare.\n{e}\n"
                f"bench: to measure only the peers: --systems dockerd,runc,crun") from None
        self.import_image(self.tar)

    def daemon_pids(self) -> list[int]:
        # The daemon and its launcher. Supervisors are the launcher's children (one fork, own session) and the
        # containers' processes theirs: both are left out here, the supervisors being counted apart.
        supervisors = set(self.daemon.supervisor_pids())
        skip = supervisors | {p for s in supervisors for p in children(s)}
        return [self.daemon.pid, *[p for p in children(self.daemon.pid) if p not in skip]]

    def container_overhead_pids(self, ids: list[str]) -> list[int]:
        return self.daemon.supervisor_pids()

    def close(self) -> None:
        problems = self.daemon.cleanup()
        if problems:
            log("dockweb cleanup left: " + "; ".join(problems))


class Dockerd(DockerAPISystem):
    """A private dockerd as shared/reference/PEERS.md starts it: its own data root, exec root, socket and cgroup parent.

    Without netns it has no bridge and no iptables (containers run with --network none). With netns (a name under
    /run/netns that this object creates and deletes) it runs inside that namespace with Docker's network defaults
    but no NAT out, for the networking benchmark.
    """

    def __init__(self, tar: Path, work: Path, prefix: str = BENCH, netns: str | None = None) -> None:
        super().__init__("dockerd")
        self.tar = tar
        self.data_root = Path(f"/var/lib/{prefix}-docker")
        self.exec_root = Path(f"/run/{prefix}-docker-exec")
        self.socket = Path(f"/run/{prefix}-docker.sock")
        self.pidfile = Path(f"/run/{prefix}-docker.pid")
        # Its own cgroup parent: another dockerd may run on this machine (and own "docker") at the same time.
        self.cgroup_parent = f"{prefix}-docker"
        self.netns = netns
        self.netns_path = f"/run/netns/{netns}" if netns else None
        self.log_path = work / "dockerd.log"
        self.proc: subprocess.Popen | None = None
        (work / "dockercfg-dockerd").mkdir()
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=str(work / "dockercfg-dockerd"))
        self.env.pop("DOCKER_CONTEXT", None)

    def start(self) -> None:
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise Unavailable("dockerd is not installed (./dockweb.sh bench installs docker.io)")
        self._remove_state()
        prefix: list[str] = []
        network = ["--bridge=none", "--iptables=false"]
        if self.netns:
            run(["ip", "netns", "add", self.netns])
            run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
            prefix, network = ["nsenter", f"--net={self.netns_path}"], []
        cmd = [*prefix, dockerd, *network, "--ip6tables=false", "--ip-masq=false", "--cgroup-parent",
               self.cgroup_parent, "--storage-driver", "overlay2", "--data-root", str(self.data_root),
               "--exec-root", str(self.exec_root), "--host", f"unix://{self.socket}", "--pidfile", str(self.pidfile)]
        log(f"starting a private dockerd on {self.socket}" + (f" in network namespace {self.netns}" if self.netns
                                                               else ""))
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while not ping(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
                self.close()
                raise Unavailable(f"dockerd did not start:\n{tail}")
            time.sleep(0.1)
        self.import_image(self.tar)

    def daemon_pids(self) -> list[int]:
        # dockerd and the containerd it manages (a child of dockerd); shims are reparented away, counted apart.
        return [self.proc.pid, *[p for p in children(self.proc.pid) if b"containerd-shim" not in cmdline(p)]]

    def container_overhead_pids(self, ids: list[str]) -> list[int]:
        wanted = set(ids)
        found = []
        for pid in all_pids():
            args = cmdline(pid).split()
            if args and b"containerd-shim" in args[0] and b"-id" in args:
                i = args.index(b"-id")
                if i + 1 < len(args) and args[i + 1].decode() in wanted:
                    found.append(pid)
        return found

    def _remove_state(self) -> None:
        for d in (self.data_root, self.exec_root):
            unmount_under(d)
            shutil.rmtree(d, ignore_errors=True)
        for f in (self.socket, self.pidfile):
            f.unlink(missing_ok=True)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._remove_state()
        if self.proc:
            for problem in remove_cgroups(self.cgroup_parent):
                log(f"dockerd cleanup: {problem}")
        if self.netns_path and os.path.exists(self.netns_path):
            run(["ip", "netns", "del", self.netns], check=False)


class OCIRuntime(System):
    """runc or crun on an OCI bundle of the same rootfs (`runc spec`, terminal false, args ["true"])."""

    def __init__(self, name: str, rootfs: Path, work: Path) -> None:
        super().__init__(name, run_label=f"{name} run")
        self.binary = shutil.which(name)
        self.bundle = work / f"bundle-{name}"
        self.state = work / f"state-{name}"
        self.rootfs = rootfs
        self.ids: list[str] = []

    def start(self) -> None:
        if self.binary is None:
            raise Unavailable(f"{self.name} is not installed (./dockweb.sh bench installs it)")
        if not shutil.which("runc"):
            raise Unavailable("runc is needed for `runc spec`")
        self.bundle.mkdir()
        self.state.mkdir()
        run(["runc", "spec", "--bundle", str(self.bundle)])
        spec = json.loads((self.bundle / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["true"]
        spec["root"]["path"] = str(self.rootfs)
        (self.bundle / "config.json").write_text(json.dumps(spec, indent=2))
        r = subprocess.run(self.run_cmd(-1), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise Unavailable(f"{self.name} run failed here: {r.stderr.strip()[-500:]}")

    def run_cmd(self, n: int) -> list[str]:
        cid = f"{BENCH}-{self.name}-{os.getpid()}-{n}"
        self.ids.append(cid)
        return [self.binary, "--root", str(self.state), "run", "--bundle", str(self.bundle), cid]

    def close(self) -> None:
        if self.binary and self.state.is_dir():
            for cid in os.listdir(self.state):
                subprocess.run([self.binary, "--root", str(self.state), "delete", "-f", cid], capture_output=True)


def hybrid_cgroups() -> bool:
    """True on hosts with v1 controllers plus a cgroup2 hierarchy at /sys/fs/cgroup/unified."""
    return any(p == "/sys/fs/cgroup/unified" and fs == "cgroup2" for p, fs in mounts())


class Crun(OCIRuntime):
    def __init__(self, rootfs: Path, work: Path) -> None:
        super().__init__("crun", rootfs, work)

    def run_cmd(self, n: int) -> list[str]:
        cmd = super().run_cmd(n)
        if not hybrid_cgroups():
            return cmd
        # crun 1.8 refuses hybrid cgroups; hide the unified hierarchy in a private mount namespace (PEERS.md).
        # This adds an unshare + sh to every crun run; the table says so.
        inner = shlex.join(cmd)
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                f"umount /sys/fs/cgroup/unified && exec {inner}"]


@dataclass
class Series:
    samples_ms: list[float] = field(default_factory=list)
    error: str = ""

    def summary(self) -> dict:
        if not self.samples_ms:
            return {"error": self.error or "no samples"}
        return {"median_ms": statistics.median(self.samples_ms), "min_ms": min(self.samples_ms),
                "max_ms": max(self.samples_ms), "runs": len(self.samples_ms),
                "samples_ms": [round(s, 3) for s in self.samples_ms], **({"error": self.error} if self.error else {})}


Case = tuple[dict, Callable[[int], list[str]]]  # (environment, run number -> command)


def time_interleaved(cases: dict[str, Case], warmup: int, runs: int) -> dict[str, Series]:
    """Time each case's command warmup+runs times, interleaved A B C A B C, keeping only the timed runs."""
    series = {name: Series() for name in cases}
    for i in range(warmup + runs):
        for name, (env, make_cmd) in cases.items():
            s = series[name]
            if s.error:
                continue
            cmd = make_cmd(i)
            t0 = time.perf_counter_ns()
            r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=120)
            dt = (time.perf_counter_ns() - t0) / 1e6
            if r.returncode != 0:
                s.error = f"{' '.join(cmd[:4])}… exited {r.returncode}: {r.stderr.decode(errors='replace').strip()[-300:]}"
                log(f"{name}: {s.error}")
                continue
            if i >= warmup:
                s.samples_ms.append(dt)
        if (i + 1) % 5 == 0:
            log(f"round {i + 1}/{warmup + runs}")
    return series


def wait_running(system: DockerAPISystem, ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = system.docker("inspect", "--format", "{{.State.Running}}", *ids, check=False)
        if r.returncode == 0 and r.stdout.split() == ["true"] * len(ids):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{system.name}: containers not all running after {timeout}s")


def measure_memory(system: DockerAPISystem, n: int) -> dict:
    """Start n idle containers and return the host memory they cost (PSS), per container and by part."""
    daemon_before = sum(pss(p) for p in system.daemon_pids())
    names = [f"{BENCH}-idle-{i}" for i in range(n)]
    try:
        ids = [system.start_idle(name) for name in names]
        wait_running(system, ids)
        time.sleep(2)  # let the daemons settle (GC, lazily mapped pages) before reading PSS
        overhead_pids = system.container_overhead_pids(ids)
        per_process = sum(pss(p) for p in overhead_pids)
        daemon_growth = sum(pss(p) for p in system.daemon_pids()) - daemon_before
        # Signed on purpose: supervisors forked from the launcher share its pages, so PSS moves from the launcher
        # to them; the cost is the change of the whole sum, not the supervisors' PSS alone.
        total = per_process + daemon_growth
        return {"containers": n, "overhead_processes": len(overhead_pids), "overhead_pss_bytes": per_process,
                "daemon_growth_bytes": daemon_growth, "per_container_bytes": total / n}
    finally:
        system.remove(names)


def exec_case(system: DockerAPISystem) -> Case:
    return system.env, lambda i: ["docker", "exec", f"{BENCH}-exec", "true"]


def fmt_ms(v: float) -> str:
    return f"{v:8.1f} ms"


def print_rows(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print()


def ratio_text(r: dict) -> str:
    ratio = r.get("dockweb_over_this")
    return f"{ratio:.3f}x" if ratio is not None else ""


def print_table(results: dict) -> None:
    rows = []
    for case, label in (("run", "run `true`, remove"), ("exec", "exec `true`")):
        for name, r in results.get(case, {}).items():
            if "median_ms" in r:
                rows.append((label, r["command"], fmt_ms(r["median_ms"]), fmt_ms(r["min_ms"]), fmt_ms(r["max_ms"]),
                             ratio_text(r)))
            else:
                rows.append((label, r.get("command", name), "error (below)", "", "", ""))
            label = ""
    print()
    if rows:
        print_rows(("case", "command (system)", "median", "min", "max", "dockweb/this"), rows)
    rows = []
    for name, r in results.get("memory", {}).items():
        if "per_container_bytes" in r:
            rows.append((name, f"{r['per_container_bytes'] / 2**20:.2f} MiB",
                         f"{r['overhead_processes']} ({r['overhead_pss_bytes'] / 2**20:.2f} MiB)",
                         f"{r['daemon_growth_bytes'] / 2**20:.2f} MiB", ratio_text(r)))
        else:
            rows.append((name, "error (below)", "", "", ""))
    if rows:
        n = next((r["containers"] for r in results["memory"].values() if "containers" in r), "?")
        print(f"host memory per idle running container (PSS, {n} containers `sleep 3600`):")
        print_rows(("system", "per container", "per-container processes", "daemon growth", "dockweb/this"), rows)
    for case in ("run", "exec", "memory"):
        for name, r in results.get(case, {}).items():
            if r.get("error"):
                print(f"error in {case} on {name}: {r['error']}")


def add_ratios(case: dict, key: str) -> None:
    base = case.get("dockweb", {}).get(key)
    for name, r in case.items():
        if name != "dockweb" and base is not None and r.get(key):
            r["dockweb_over_this"] = base / r[key]


def machine_info() -> dict:
    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return ""
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
            "docker_cli": version(["docker", "version", "--format", "{{.Client.Version}}"]),
            "dockerd": version(["dockerd", "--version"]), "runc": version(["runc", "--version"]),
            "crun": version(["crun", "--version"]), "cgroups": "hybrid" if hybrid_cgroups() else "v2 or v1",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _interrupt(signum: int, _frame) -> None:
    # SIGTERM takes the same way out as Ctrl-C, so main's finally always cleans up.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per system and case (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--containers", type=int, default=10, help="idle containers for the memory case (default 10)")
    parser.add_argument("--systems", default=",".join(ALL_SYSTEMS),
                        help=f"comma list out of {','.join(ALL_SYSTEMS)} (default: all)")
    parser.add_argument("--cases", default="run,exec,mem", help="comma list out of run,exec,mem (default: all)")
    parser.add_argument("--json", type=Path, help="also write the results (samples included) to this file")
    args = parser.parse_args(argv)
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    unknown = set(wanted) - set(ALL_SYSTEMS) or cases - {"run", "exec", "mem"}
    if unknown:
        parser.error(f"unknown system or case: {', '.join(sorted(unknown))}")
    if os.geteuid() != 0:
        parser.error("run as root (it starts daemons and containers)")
    if shutil.which("docker") is None and {"dockweb", "dockerd"} & set(wanted):
        parser.error("the docker CLI is not on PATH")

    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix=f"{BENCH}-", dir="/tmp"))
    systems: list[System] = []
    results: dict = {"machine": machine_info(), "runs": args.runs, "warmup": args.warmup, "skipped": {}}
    try:
        rootfs, tar = make_rootfs(work)
        makers = {"dockweb": lambda: Dockweb(tar), "dockerd": lambda: Dockerd(tar, work),
                  "runc": lambda: OCIRuntime("runc", rootfs, work), "crun": lambda: Crun(rootfs, work)}
        for name in wanted:
            system = makers[name]()
            try:
                system.start()
            except Unavailable as e:
                log(f"skipping {name}: {e}")
                results["skipped"][name] = str(e)
                system.close()
                continue
            systems.append(system)
        daemons = [s for s in systems if isinstance(s, DockerAPISystem)]

        if "run" in cases:
            log(f"timing run: {', '.join(s.name for s in systems)}; warmup {args.warmup}, runs {args.runs}")
            series = time_interleaved({s.name: (s.env, s.run_cmd) for s in systems}, args.warmup, args.runs)
            results["run"] = {name: {"command": next(s.run_label for s in systems if s.name == name) + f" ({name})",
                                     **ser.summary()} for name, ser in series.items()}
            add_ratios(results["run"], "median_ms")

        if "exec" in cases and daemons:
            ready, results["exec"] = [], {}
            for s in daemons:
                s.remove([f"{BENCH}-exec"])
                try:
                    s.start_idle(f"{BENCH}-exec")
                    ready.append(s)
                except RuntimeError as e:
                    results["exec"][s.name] = {"error": str(e)}
            log(f"timing exec: {', '.join(s.name for s in ready)}")
            series = time_interleaved({s.name: exec_case(s) for s in ready}, args.warmup, args.runs)
            results["exec"].update({name: {"command": f"docker exec ({name})", **ser.summary()}
                                    for name, ser in series.items()})
            add_ratios(results["exec"], "median_ms")
            for s in daemons:
                s.remove([f"{BENCH}-exec"])

        if "mem" in cases and daemons:
            results["memory"] = {}
            for s in daemons:
                log(f"memory: {args.containers} idle containers on {s.name}")
                try:
                    results["memory"][s.name] = measure_memory(s, args.containers)
                except RuntimeError as e:
                    results["memory"][s.name] = {"error": str(e)}
            add_ratios(results["memory"], "per_container_bytes")
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        for s in reversed(systems):
            try:
                s.close()
            except Exception as e:  # noqa: BLE001 - keep closing the others
                log(f"closing {s.name}: {e}")
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)

    print_table(results)
    for name, why in results["skipped"].items():
        print(f"skipped {name}: {why.splitlines()[0]}")
    if "crun" in [s.name for s in systems] and hybrid_cgroups():
        print("note: crun runs inside `unshare -m` + sh on this hybrid-cgroup host (PEERS.md), which adds a little.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"results written to {args.json}")
    failed = any(r.get("error") for case in ("run", "exec", "memory") for r in results.get(case, {}).values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
