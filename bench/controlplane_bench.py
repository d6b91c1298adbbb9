#!/usr/bin/env python3
"""Benchmark the control plane's busiest pages: server time of the containers list and the overview.

Data: 1,000 containers across 10 teams (100 each, mixed states, images, labels, ports), 40 images, 200 volumes,
500 jobs and 20,000 audit entries, written straight into a fresh database (SQLite in a temporary directory, or the
PostgreSQL database --database-url names). The engine is not involved: both pages read only the models.

Server time: Django's test client calls the whole stack in this process (middleware, session, permission checks,
queries, template rendering) without a socket, so the figure is what the server spends, not the network.
Each case: --warmup untimed requests, then --runs timed ones; the table shows p50, p95, max and the queries of one
request. Target: p95 under 100 ms. It reports; the exit code is 1 only when a page did not answer 200.

    .venv/bin/python bench/controlplane_bench.py [--runs 200] [--database-url postgres://...]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEAMS = 10
PER_TEAM = 100
TARGET_MS = 100.0


def setup(database_url: str | None) -> str:
    """Point Django at a fresh database, migrate it; return a description of the database."""
    tmp = tempfile.mkdtemp(prefix="dockweb-bench-cp-")
    os.mkdir(f"{tmp}/static")  # WhiteNoise warns about a missing STATIC_ROOT; the bench serves no files
    url = database_url or f"sqlite:///{tmp}/db.sqlite3"
    os.environ.update(DJANGO_SETTINGS_MODULE="dockweb.settings", DATABASE_URL=url, DOCKWEB_CHANNEL_LAYER="memory",
                      DOCKWEB_ALLOWED_HOSTS="testserver", DOCKWEB_STATIC_ROOT=f"{tmp}/static",
                      DOCKWEB_ENGINE_URL="unix:///nonexistent/engine.sock", DOCKWEB_LOG_LEVEL="WARNING")
    os.environ.setdefault("DOCKWEB_SECRET_KEY", "dockweb-bench-only-" + "x" * 40)
    os.environ.pop("DOCKWEB_DEBUG", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client, and no DEBUG query log growing across thousands of requests
    if database_url:
        call_command("flush", verbosity=0, interactive=False)
    call_command("migrate", verbosity=0, interactive=False)
    import atexit

    atexit.register(shutil.rmtree, tmp, True)
    return "PostgreSQL" if url.startswith("postgres") else "SQLite (WAL)"


def seed() -> dict:
    """Write the benchmark's rows; return the users the cases log in as."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from dockweb.accounts.models import Membership, Team
    from dockweb.containers.models import Container
    from dockweb.core.models import AuditEntry, Job
    from dockweb.hosts.models import Host
    from dockweb.images.models import Image
    from dockweb.volumes.models import Volume

    rng = random.Random(6)
    now = timezone.now()
    User = get_user_model()
    host = Host.objects.create(name="local", health="up", engine_version="bench")
    teams = [Team.objects.create(name=f"Team {n}", slug=f"team-{n}") for n in range(TEAMS)]
    site = User.objects.create_user("site", is_superuser=True, is_staff=True)
    member = User.objects.create_user("member")
    Membership.objects.create(user=member, team=teams[0], role="operator")
    for n, team in enumerate(teams):
        Membership.objects.bulk_create([Membership(user=User.objects.create_user(f"user-{n}-{k}"), team=team,
                                                   role=role) for k, role in enumerate(("admin", "viewer"))])
    images = ["busybox:latest", "nginx:1.27", "postgres:16", "redis:7", "python:3.12-slim", "node:22"]
    states = ["running"] * 6 + ["exited"] * 3 + ["created"]
    rows = []
    for t, team in enumerate(teams):
        for k in range(PER_TEAM):
            state = rng.choice(states)
            created = now - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
            rows.append(Container(
                host=host, engine_id=f"{t:02x}{k:04x}" + "%058x" % rng.getrandbits(232), name=f"{team.slug}-app-{k}",
                image=rng.choice(images), image_id="sha256:" + "%064x" % rng.getrandbits(256),
                command="sh -c 'exec server --port 8080'", state=state,
                exit_code=rng.choice([0, 1, 137]) if state == "exited" else None,
                labels={"dockweb.team": team.slug, "tier": rng.choice(["web", "db", "queue"]), "env": "prod"},
                ports=[{"private": 8080, "public": 20000 + t * PER_TEAM + k, "type": "tcp", "ip": ""}],
                created=created, started_at=created + timedelta(seconds=2) if state != "created" else None,
                finished_at=created + timedelta(hours=1) if state == "exited" else None, team=team))
    Container.objects.bulk_create(rows, batch_size=500)
    Image.objects.bulk_create([Image(host=host, engine_id="sha256:" + "%064x" % rng.getrandbits(256),
                                     tags=[f"app{n}:1"], tags_text=f" app{n}:1 ", size=rng.randint(10**6, 10**9),
                                     team=teams[n % TEAMS] if n % 4 else None) for n in range(40)])
    Volume.objects.bulk_create([Volume(host=host, name=f"team-{n % TEAMS}-data-{n}", team=teams[n % TEAMS],
                                       labels={"dockweb.team": f"team-{n % TEAMS}"}) for n in range(200)])
    Job.objects.bulk_create([Job(kind=rng.choice(["image.pull", "containers.bulk"]), host=host,
                                 team=teams[n % TEAMS], user=site, target=f"job {n}",
                                 state=rng.choice(["succeeded", "failed", "running"]),
                                 created=now - timedelta(minutes=n)) for n in range(500)])
    AuditEntry.objects.bulk_create([AuditEntry(
        time=now - timedelta(seconds=n), actor_name=f"user-{n % TEAMS}-0", team_slug=f"team-{n % TEAMS}",
        action=rng.choice(["container.start", "container.stop", "container.run", "image.pull"]),
        object_type="container", object_name=f"team-{n % TEAMS}-app-{n % PER_TEAM}", host_name="local",
        source_ip="127.0.0.1") for n in range(20_000)], batch_size=1000)
    team_admin = User.objects.get(username="user-0-0")
    return {"site admin": site, "team operator": member, "team admin": team_admin}


def measure(client, url: str, runs: int, warmup: int, headers: dict) -> tuple[list[float], int, int]:
    """Return the timings (ms) of runs requests, the status, and the number of queries of one request."""
    from django.db import connection

    for _ in range(warmup):
        client.get(url, **headers)
    # Count with a wrapper: the request_started signal empties connection.queries, so a capture would read 0.
    queries = []
    with connection.execute_wrapper(lambda execute, sql, params, many, context: queries.append(sql)
                                    or execute(sql, params, many, context)):
        status = client.get(url, **headers).status_code
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        client.get(url, **headers)
        times.append((time.perf_counter() - start) * 1000)
    return times, status, len(queries)


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--database-url", help="a PostgreSQL database to fill (it is flushed first!)")
    args = parser.parse_args()

    database = setup(args.database_url)
    started = time.perf_counter()
    users = seed()
    seeded = time.perf_counter() - started
    from django.test import Client

    from dockweb.containers.models import Container

    htmx = {"HTTP_HX_REQUEST": "true"}
    cases = [
        ("containers list", "site admin", "/containers/", {}),
        ("containers list, filtered + sorted", "site admin", "/containers/?state=running&label=tier=web&order=-created", {}),
        ("containers list, search", "site admin", "/containers/?search=app-4", {}),
        ("containers list, page 20 (htmx)", "site admin", "/containers/?page=20", htmx),
        ("containers list", "team operator", "/containers/", {}),
        ("containers API, 100 rows", "site admin", "/api/containers/", {}),
        ("overview", "site admin", "/", {}),
        ("overview", "team admin", "/", {}),
        ("overview", "team operator", "/", {}),
    ]
    print(f"dockweb control plane: {Container.objects.count()} containers in {TEAMS} teams on {database} "
          f"(seeded in {seeded:.1f} s); {args.runs} runs per case after {args.warmup} warm-up; Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs")
    header = f"{'page':<38} {'as':<14} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'queries':>7}  target"
    print(header)
    print("-" * len(header))
    failed = False
    for name, who, url, headers in cases:
        client = Client()
        client.force_login(users[who])
        times, status, queries = measure(client, url, args.runs, args.warmup, headers)
        if status != 200:
            print(f"{name:<38} {who:<14} answered {status}")
            failed = True
            continue
        p95 = p(times, 95)
        verdict = "ok" if p95 < TARGET_MS else f"OVER {TARGET_MS:.0f} ms"
        print(f"{name:<38} {who:<14} {p(times, 50):7.1f} {p95:7.1f} {max(times):7.1f} {queries:7d}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
