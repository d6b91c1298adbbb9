"""A build job's output reaches its websocket line by line while the build runs, not when it ends."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from tests.unit.dockweb.support import flush_database, setup_django

setup_django()

from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.core.jobs import run_job  # noqa: E402
from dockweb.core.models import Job  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402
from dockweb.images import services, tasks  # noqa: E402
from tests.unit.dockweb.live_support import open_socket, session_cookie  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration]

DOCKERFILE = """FROM busybox
RUN echo step-one-output && sleep 1.5
RUN echo step-two-output && sleep 1.5
RUN echo last-step-output
"""


class _Sent:
    id = None


@pytest.fixture
def world(engine, monkeypatch):
    from django.contrib.auth import get_user_model

    from dockweb.accounts.models import Membership, Team

    monkeypatch.setattr(tasks.build_image, "apply_async", lambda args, queue: _Sent())
    host = Host.objects.create(name="local", engine_url=engine.base_url)
    red, _ = Team.objects.get_or_create(slug="red", defaults={"name": "red"})
    olga = get_user_model().objects.create_user("olga")
    Membership.objects.create(user=olga, team=red, role="operator")
    try:
        yield host, olga
    finally:
        engine_clients.close_clients()
        flush_database()


def test_build_output_streams_while_the_build_runs(world, engine):
    host, olga = world
    job = services.build_image(olga, tag="dockweb-test/live-build:1", team_slug="red", dockerfile_text=DOCKERFILE,
                               nocache=True)
    _, key = session_cookie(olga)

    async def scenario():
        comm, connected = await open_socket(f"/ws/jobs/{job.pk}/", key)
        assert connected
        assert json.loads(await comm.receive_from(5))["type"] == "job"
        assert json.loads(await comm.receive_from(5)) == {"type": "log", "text": ""}
        started = time.monotonic()
        work = asyncio.ensure_future(database_sync_to_async(run_job)(job.pk, services.run_build))
        seen: list[tuple[float, dict]] = []
        while True:
            msg = json.loads(await comm.receive_from(30))
            seen.append((time.monotonic() - started, msg))
            if msg["type"] == "job" and msg["job"]["state"] in ("succeeded", "failed"):
                break
        await work
        await comm.disconnect()
        return seen

    seen = async_to_sync(scenario)()
    finished = seen[-1][0]
    assert seen[-1][1]["job"]["state"] == "succeeded", Job.objects.get(pk=job.pk).error
    first_output = next(t for t, m in seen if m["type"] == "log" and "step-one-output" in m["text"])
    assert finished - first_output > 2.0, "the first step's output came only at the end"
    log = "".join(m["text"] for _, m in seen if m["type"] == "log")
    assert log.index("step-one-output") < log.index("step-two-output") < log.index("last-step-output")
    progress = [m["job"]["progress"] for _, m in seen if m["type"] == "job"]
    assert 0 < min(p for p in progress if p > 0) < 1.0  # Step n/m moved the bar before the end
    assert Job.objects.get(pk=job.pk).log == log
    assert engine.client().images.get("dockweb-test/live-build:1").labels.get("dockweb.team") == "red"
