#!/usr/bin/env python3
"""Benchmark a scheduled volume backup through the whole stack (beat -> Redis -> Celery worker -> engine) against
the engine's direct backup API and host `tar | zstd -1`, on the same ~1 GiB volume, in one interleaved run.

Cases (each --runs times, interleaved; an untimed `sync` before each):
  host       `tar -C <volume data> -cf - . | zstd -1 -q -o <file>` (the target: end to end >= 0.9x its throughput)
  api        POST /dockweb/volumes/{name}/backups on the engine (docker-py, as the worker calls it), verify checksum
  scheduled  a backup policy with the cron `* * * * *`: django-celery-beat fires it at the minute, the worker runs
             the job (engine backup, record, retention keep_last=1); timed from the scheduled minute to the job's
             end, and also from the job's start (worker + engine only)

Data: bench/backup_bench.py's mixed set (20,000 small files, half text and half random, plus four large files),
written straight into the volume's directory. Needs root (the engine daemon runs in its own network namespace,
started by the test harness), redis-server and zstd. Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.backup_bench import make_data, sh  # noqa: E402
from tests.integration import backup_stack as bs  # noqa: E402
from tests.integration.daemon_harness import EngineDaemon  # noqa: E402
from tests.unit.dockweb.support import redis_server, setup_django  # noqa: E402

VOLUME = "bench-data"


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def tree_bytes(root: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(root) for f in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per case (each scheduled run waits for a "
                                                            "minute boundary)")
    parser.add_argument("--small", type=int, default=20000, help="small files")
    parser.add_argument("--large-mb", type=int, default=170, help="MiB of each of the four large files")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (the engine daemon)", file=sys.stderr)
        return 2
    for tool in ("redis-server", "zstd", "tar"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not installed", file=sys.stderr)
            return 2

    setup_django()
    from django.contrib.auth import get_user_model

    from dockweb.accounts.models import Team
    from dockweb.backups import engine_api, services
    from dockweb.backups.models import BackupRecord
    from dockweb.core.models import Job
    from dockweb.hosts.models import Host

    tmp = Path(tempfile.mkdtemp(prefix="dockweb-bench-sched-"))
    engine = EngineDaemon.create(cgroup_prefix="dockweb-bench")
    procs: list[bs.Proc] = []
    results: dict[str, list[float]] = {"host": [], "api": [], "api (engine's own time)": [], "scheduled": [],
                                       "scheduled (job only)": [], "scheduled (engine's own time)": []}
    try:
        engine.start()
        with redis_server() as redis_url, bs.celery_pointed_at(redis_url):
            host = Host.objects.create(name="bench", engine_url=engine.base_url)
            admin = get_user_model().objects.create_superuser("bench-admin")
            Team.objects.create(name="Bench", slug="bench")
            engine.client().api.create_volume(VOLUME, labels={"dockweb.team": "bench"})
            from dockweb.volumes.services import sync_volume

            sync_volume(host, VOLUME)
            data = engine.root / "volumes" / VOLUME / "_data"
            log(f"writing the data set into volume {VOLUME} ...")
            make_data(data, args.small, args.large_mb)
            nbytes = tree_bytes(data)
            log(f"{nbytes / 2**20:.0f} MiB in the volume")

            env = bs.celery_env(redis_url, tmp / "store")
            procs.append(bs.start_worker(env, f"dockweb,{host.queue}", tmp))
            # Beat's loop wakes at least every second, so it fires within a second of the minute.
            procs.append(bs.start_beat(env, tmp, max_interval=1))
            policy = services.save_policy(admin, {"name": "bench-minutely", "team": "bench", "host": "bench",
                                                  "volume": VOLUME, "preset": "custom", "cron": "* * * * *",
                                                  "keep_last": 1, "keep_daily": 0, "keep_weekly": 0,
                                                  "keep_monthly": 0})
            archive = tmp / "host.tar.zst"
            seen: set[int] = set()
            # The first scheduled run warms up (and may start before beat has read the policy): not timed.
            for round_no in range(args.runs + 1):
                deadline = time.monotonic() + 150
                job = None
                while time.monotonic() < deadline:
                    job = Job.objects.filter(kind="backup.run", params__policy=policy.pk).exclude(
                        pk__in=seen).order_by("pk").first()
                    if job is not None and Job.objects.get(pk=job.pk).done:
                        job = Job.objects.get(pk=job.pk)
                        break
                    time.sleep(0.2)
                else:
                    raise RuntimeError("no scheduled backup finished within 150 s:\n" + procs[1].log()
                                       + "\n" + procs[0].log())
                seen.add(job.pk)
                if job.state != "succeeded":
                    raise RuntimeError(f"scheduled backup failed: {job.error}")
                minute = job.created.replace(second=0, microsecond=0)
                if job.created - minute > timedelta(seconds=30):
                    log(f"job {job.pk} started late ({job.created:%H:%M:%S}): not counted")
                    continue
                if round_no == 0:
                    log("warm-up scheduled run done")
                else:
                    results["scheduled"].append((job.finished - minute).total_seconds())
                    results["scheduled (job only)"].append((job.finished - job.started).total_seconds())
                    newest = BackupRecord.objects.filter(job=job).get()
                    results["scheduled (engine's own time)"].append(
                        engine_api.inspect_backup(host, newest.engine_id)["Duration"])
                    log(f"scheduled run {round_no}: {results['scheduled'][-1]:.2f} s from the minute")
                # Between two minutes: the host pipeline and the direct API, each after an untimed sync.
                sh("sync")
                t = time.perf_counter()
                sh(f"tar -C {data} -cf - . | zstd -1 -q -f -o {archive}")
                results["host"].append(time.perf_counter() - t)
                sh("sync")
                t = time.perf_counter()
                doc = engine_api.create_backup(host, VOLUME, compression="zstd", consistency="pause")
                results["api"].append(time.perf_counter() - t)
                results["api (engine's own time)"].append(doc["Duration"])
                engine_api.delete_backup(host, doc["Id"])
                archive.unlink()
                log(f"round {round_no}: host {results['host'][-1]:.2f} s, api {results['api'][-1]:.2f} s")
            record = BackupRecord.objects.filter(policy=policy).order_by("-pk").first()

        print(f"\nvolume: {nbytes / 2**20:.0f} MiB in {args.small + 4} files; last scheduled archive "
              f"{record.size / 2**20:.0f} MiB; {args.runs} timed runs each, median (min-max)\n")
        host_median = statistics.median(results["host"])
        print(f"{'case':<32}{'seconds':>22}{'MiB/s':>10}{'vs host':>10}")
        for name, times in results.items():
            if not times:
                continue
            med = statistics.median(times)
            print(f"{name:<32}{med:>10.2f} ({min(times):.2f}-{max(times):.2f}){nbytes / 2**20 / med:>10.0f}"
                  f"{host_median / med:>9.2f}x")
        return 0
    finally:
        for p in procs:
            p.stop()
        from dockweb.core import client as engine_clients

        engine_clients.close_clients()
        problems = engine.cleanup()
        if problems:
            log("engine cleanup left: " + "; ".join(problems))
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["sync"])


if __name__ == "__main__":
    sys.exit(main())
