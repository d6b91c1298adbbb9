"""A logs socket receives every line of a fast writer, once and in order, through the hub, across log rotation."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync

from tests.unit.dockweb.support import flush_database, setup_django

setup_django()

from dockweb.containers import services  # noqa: E402
from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402
from dockweb.live.streams import HUB  # noqa: E402
from tests.unit.dockweb.live_support import open_socket, session_cookie  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration]

N = 50_000


@pytest.fixture
def world(engine):
    from django.contrib.auth import get_user_model

    from dockweb.accounts.models import Membership, Team

    host = Host.objects.create(name="local", engine_url=engine.base_url)
    red, _ = Team.objects.get_or_create(slug="red", defaults={"name": "red"})
    olga = get_user_model().objects.create_user("olga")
    Membership.objects.create(user=olga, team=red, role="operator")
    _, key = session_cookie(olga)
    try:
        yield host, key
    finally:
        for c in engine.client().containers.list(all=True):
            c.remove(force=True)
        engine_clients.close_clients()
        flush_database()


def test_a_logs_socket_gets_every_line_of_a_fast_writer_in_order_across_rotation(world, engine):
    host, key = world
    api = engine_clients.engine_client(host).api
    # 64 KiB files, enough of them to keep every line: the follow must not skip one while the writer races ahead.
    log_config = api.create_host_config(log_config={"Type": "json-file",
                                                    "Config": {"max-size": "64k", "max-file": "200"}})
    cid = api.create_container("busybox", command=["sh", "-c", f"sleep 2; seq 1 {N}; exec sleep 300"],
                               labels={"dockweb.team": "red"}, host_config=log_config)["Id"]
    api.start(cid)
    services.sync_container(host, cid)

    async def scenario() -> list[int]:
        comm, connected = await open_socket(f"/ws/hosts/{host.pk}/containers/{cid}/logs/?tail=0", key)
        assert connected
        got: list[int] = []
        deadline = time.monotonic() + 60
        while len(got) < N and time.monotonic() < deadline:
            msg = json.loads(await comm.receive_from(30))
            assert msg["type"] == "lines", msg
            got += [int(line["l"]) for line in msg["lines"]]
        await comm.disconnect()
        await asyncio.sleep(0.1)
        assert HUB.running("logs") == 0
        return got

    got = async_to_sync(scenario)()
    rotated = list(engine.root.glob(f"containers/{cid}/container-json.log.*"))
    assert len(rotated) > 10, "the log did not rotate: the test proves nothing"
    missing = sorted(set(range(1, N + 1)) - set(got))
    assert got == list(range(1, N + 1)), f"{len(got)} lines of {N}, {len(missing)} missing (first {missing[:5]})"
