#!/usr/bin/env python3
"""Measure what one container's supervisor costs: host memory of idle containers and the latency of start().

Runs a real dockweb engine daemon on a temporary root (tests/integration/daemon_harness.py), then
  memory  starts N idle `busybox sleep 3600` containers (`docker run -d --network none`, like the container
          bench), waits, and reports each supervisor's Private_Dirty and PSS (/proc/PID/smaps_rollup) and the
          change of the daemon's and the launcher's PSS;
  start   creates a `busybox true` container with docker-py's low-level APIClient and times start() alone,
          RUNS times; reports the median, min and max.
Reports, never asserts. Everything it starts is removed at the end (EngineDaemon.cleanup()).

    /tmp/venv0/bin/python bench/supervisor_memory.py [--containers 10] [--runs 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.daemon_harness import EngineDaemon, all_pids, cmdline  # noqa: E402

IMAGE = "busybox"
MiB = 1024 * 1024


def rollup(pid: int) -> dict[str, int]:
    """Return smaps_rollup's fields in bytes ({} if the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        pass
    return out


def ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def launcher_pids(daemon_pid: int) -> list[int]:
    return [p for p in all_pids() if ppid(p) == daemon_pid and b"engine.runtime.launcher" in cmdline(p)]


def measure_memory(d: EngineDaemon, n: int, settle: float) -> dict:
    daemon_pid = d.pid or 0
    side = [daemon_pid] + launcher_pids(daemon_pid)
    before = {p: rollup(p).get("Pss", 0) for p in side}
    names = [f"supmem-{i}" for i in range(n)]
    for name in names:
        r = d.docker("run", "-d", "--network", "none", "--name", name, IMAGE, "sleep", "3600")
        if r.returncode != 0:
            raise RuntimeError(f"docker run {name}: {r.stderr.strip()}")
    time.sleep(settle)  # let lazily touched pages and the daemon's bookkeeping settle before reading
    sups = d.supervisor_pids()
    per = [rollup(p) for p in sups]
    after = {p: rollup(p).get("Pss", 0) for p in side}
    side_growth = sum(after[p] - before[p] for p in side)
    sup_pss = sum(r.get("Pss", 0) for r in per)
    result = {
        "containers": n,
        "supervisors": len(sups),
        "supervisor_private_dirty_bytes": [r.get("Private_Dirty", 0) for r in per],
        "supervisor_pss_bytes": [r.get("Pss", 0) for r in per],
        "supervisor_rss_bytes": [r.get("Rss", 0) for r in per],
        "daemon_pss_change_bytes": after[daemon_pid] - before[daemon_pid],
        "launcher_pss_change_bytes": side_growth - (after[daemon_pid] - before[daemon_pid]),
        "per_container_bytes": (sup_pss + side_growth) / n,
    }
    r = d.docker("rm", "-f", *names, timeout=120)
    if r.returncode != 0:
        print(f"warning: docker rm: {r.stderr.strip()}", file=sys.stderr)
    return result


def measure_start(d: EngineDaemon, runs: int, warmup: int) -> dict:
    import docker

    api = docker.APIClient(base_url=d.base_url, timeout=60)
    samples = []
    try:
        for i in range(warmup + runs):
            c = api.create_container(IMAGE, ["true"], host_config=api.create_host_config(network_mode="none"))
            t0 = time.perf_counter()
            api.start(c["Id"])
            dt = (time.perf_counter() - t0) * 1000
            api.wait(c["Id"], timeout=30)
            api.remove_container(c["Id"], force=True)
            if i >= warmup:
                samples.append(dt)
    finally:
        api.close()
    return {"runs": runs, "median_ms": statistics.median(samples), "min_ms": min(samples),
            "max_ms": max(samples), "samples_ms": samples}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=10)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--skip", choices=("memory", "start"), action="append", default=[])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    d = EngineDaemon.create(cgroup_prefix="dockweb-test-bench")
    results: dict = {}
    try:
        d.start()
        if "start" not in args.skip:
            results["start"] = measure_start(d, args.runs, args.warmup)
        if "memory" not in args.skip:
            results["memory"] = measure_memory(d, args.containers, args.settle)
    finally:
        problems = d.cleanup()
        for p in problems:
            print(f"cleanup: {p}", file=sys.stderr)
    if "memory" in results:
        m = results["memory"]
        pd, ps = m["supervisor_private_dirty_bytes"], m["supervisor_pss_bytes"]
        print(f"memory: {m['supervisors']} supervisors for {m['containers']} idle containers")
        print(f"  supervisor Private_Dirty  median {statistics.median(pd) / MiB:.2f} MiB "
              f"(min {min(pd) / MiB:.2f}, max {max(pd) / MiB:.2f})")
        print(f"  supervisor PSS            median {statistics.median(ps) / MiB:.2f} MiB "
              f"(min {min(ps) / MiB:.2f}, max {max(ps) / MiB:.2f})")
        print(f"  daemon PSS change   {m['daemon_pss_change_bytes'] / MiB:+.2f} MiB")
        print(f"  launcher PSS change {m['launcher_pss_change_bytes'] / MiB:+.2f} MiB")
        print(f"  per container (supervisor PSS + daemon/launcher change) / N: "
              f"{m['per_container_bytes'] / MiB:.2f} MiB")
    if "start" in results:
        s = results["start"]
        print(f"start: APIClient.start() over {s['runs']} runs: median {s['median_ms']:.1f} ms "
              f"(min {s['min_ms']:.1f}, max {s['max_ms']:.1f})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
