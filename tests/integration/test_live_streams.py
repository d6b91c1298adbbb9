"""Live sockets against a real engine daemon: logs follow (one engine stream for many sockets), exec terminals
(echo, resize, resume after a dropped socket, exit code, audit), attach, and stats."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings

from tests.unit.dockweb.support import flush_database, setup_django

setup_django()

from dockweb.containers import services  # noqa: E402
from dockweb.containers.runspec import parse_run_input  # noqa: E402
from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.core.models import AuditEntry  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402
from dockweb.live.streams import HUB  # noqa: E402
from tests.unit.dockweb.live_support import open_socket, session_cookie  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration]


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
        yield host, olga, key
    finally:
        for c in engine.client().containers.list(all=True):
            c.remove(force=True)
        engine_clients.close_clients()
        flush_database()


def run(user, name: str, command: str, tty: bool = False):
    spec = parse_run_input({"image": "busybox", "name": name, "team": "red", "command": command})
    if not tty:
        return services.run_container(user, spec)
    # The run form has no -t: create this one with docker-py, then sync its row.
    from dockweb.containers.models import Container

    host = Host.objects.get(name="local")
    api = engine_clients.engine_client(host).api
    cid = api.create_container("busybox", command=command, name=name, tty=True, stdin_open=True,
                               labels={"dockweb.team": "red"})["Id"]
    api.start(cid)
    services.sync_container(host, cid)
    return Container.objects.get(engine_id=cid)


async def lines_until(comm, predicate, timeout: float = 10.0) -> list[str]:
    """Receive "lines" messages until predicate(all texts so far) holds; return the texts."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while not predicate(got):
        msg = json.loads(await comm.receive_from(max(deadline - time.monotonic(), 0.01)))
        assert msg["type"] == "lines", msg
        got += [line["l"] for line in msg["lines"]]
    return got


async def output_until(comm, needle: bytes, timeout: float = 10.0) -> bytes:
    """Receive terminal output (binary frames) until needle shows up; return it all."""
    out = b""
    deadline = time.monotonic() + timeout
    while needle not in out:
        msg = await comm.receive_output(max(deadline - time.monotonic(), 0.01))
        assert msg["type"] == "websocket.send", msg
        if msg.get("bytes") is not None:
            out += msg["bytes"]
        else:
            text = json.loads(msg["text"])
            assert text["type"] != "error", text
    return out


async def start_terminal(path: str, key: str, **start):
    comm, connected = await open_socket(path, key)
    assert connected
    await comm.send_to(text_data=json.dumps({"type": "start", "cmd": None, "cols": 80, "rows": 24, **start}))
    session = json.loads(await comm.receive_from(10))
    assert session["type"] == "session", session
    return comm, session


def test_logs_follow_shows_new_lines_and_three_sockets_share_one_engine_stream(world):
    host, olga, key = world
    c = run(olga, "ticker", "sh -c 'i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.2; done'")
    path = f"/ws/hosts/{host.pk}/containers/{c.engine_id}/logs/?tail=5"
    time.sleep(0.5)

    async def scenario():
        comms = []
        for _ in range(3):
            comm, connected = await open_socket(path, key)
            assert connected
            comms.append(comm)
        key_ = ("logs", host.engine_url, c.engine_id)
        for comm in comms:
            first = await lines_until(comm, lambda got: len(got) >= 1)
            last = int(first[-1].split("-")[1])
            later = await lines_until(comm, lambda got: any(int(x.split("-")[1]) > last + 1 for x in got), 5)
            numbers = [int(x.split("-")[1]) for x in first + later]
            assert numbers == sorted(set(numbers)), f"a line repeated or came out of order: {numbers}"
        assert HUB.running("logs") == 1 and HUB.opened[key_] == 1
        for comm in comms:
            await comm.disconnect()
        await asyncio.sleep(0.1)
        assert HUB.running("logs") == 0

    async_to_sync(scenario)()


def test_exec_echoes_resizes_resumes_and_reports_the_exit_code(world):
    host, olga, key = world
    c = run(olga, "shell", "sleep 300")
    path = f"/ws/hosts/{host.pk}/containers/{c.engine_id}/exec/"

    async def scenario():
        comm, session = await start_terminal(path, key)
        assert session["resumed"] is False and session["cmd"] == ["/bin/sh"]
        await comm.send_to(bytes_data=b"echo hi-$((6*7))\n")
        await output_until(comm, b"hi-42")
        await comm.send_to(text_data=json.dumps({"type": "resize", "cols": 101, "rows": 33}))
        await asyncio.sleep(0.2)
        await comm.send_to(bytes_data=b"stty size\n")
        await output_until(comm, b"33 101")
        await comm.send_to(bytes_data=b"X=kept-$((1+1))\n")
        await asyncio.sleep(0.3)
        await comm.disconnect()  # the browser's network blips

        again, resumed = await start_terminal(path, key, session=session["id"])
        assert resumed == {"type": "session", "id": session["id"], "resumed": True, "cmd": ["/bin/sh"]}
        replay = await again.receive_output(5)
        assert b"hi-42" in replay["bytes"]  # the recent output, replayed as one frame
        await again.send_to(bytes_data=b"echo value=$X\n")
        await output_until(again, b"value=kept-2")
        await again.send_to(bytes_data=b"exit 3\n")
        while True:
            msg = await again.receive_output(10)
            if msg.get("text"):
                assert json.loads(msg["text"]) == {"type": "exit", "code": 3}
                break
        assert (await again.receive_output(5))["type"] == "websocket.close"
        await again.disconnect()

    with override_settings(LIVE_EXEC_GRACE=30):
        async_to_sync(scenario)()
    actions = list(AuditEntry.objects.filter(object_name="shell").values_list("action", "message"))
    assert ("container.exec", f"session {session_id(actions)} started: /bin/sh") in actions
    assert any(a == "container.exec.end" and "exit code 3" in m for a, m in actions)


def session_id(actions) -> str:
    return next(m.split()[1] for a, m in actions if a == "container.exec")


def test_a_session_not_resumed_within_the_grace_period_ends(world, engine):
    host, olga, key = world
    c = run(olga, "graceful", "sleep 300")
    path = f"/ws/hosts/{host.pk}/containers/{c.engine_id}/exec/"

    async def scenario():
        comm, session = await start_terminal(path, key, cmd="sh")
        await comm.send_to(bytes_data=b"echo ready\n")
        await output_until(comm, b"ready")
        await comm.disconnect()
        await asyncio.sleep(1.5)
        again, fresh = await start_terminal(path, key, session=session["id"])
        assert fresh["resumed"] is False and fresh["id"] != session["id"]
        await again.disconnect()
        await asyncio.sleep(1.5)  # the grace timers run on this loop

    with override_settings(LIVE_EXEC_GRACE=1):
        async_to_sync(scenario)()
    time.sleep(0.5)
    ps = engine.docker("exec", "graceful", "ps", "-o", "pid,args").stdout
    assert "/bin/sh" not in ps and " sh" not in ps, f"the abandoned shells still run:\n{ps}"
    assert AuditEntry.objects.filter(action="container.exec.end", message__contains="no socket came back").exists()


def test_attach_reaches_a_tty_containers_shell_and_refuses_a_non_tty_one(world):
    host, olga, key = world
    tty = run(olga, "tty-shell", "sh", tty=True)
    plain = run(olga, "plain", "sleep 300")

    async def scenario():
        comm, session = await start_terminal(f"/ws/hosts/{host.pk}/containers/{tty.engine_id}/attach/", key)
        await comm.send_to(bytes_data=b"echo attached-$((2*3))\n")
        await output_until(comm, b"attached-6")
        await comm.disconnect()

        comm, connected = await open_socket(f"/ws/hosts/{host.pk}/containers/{plain.engine_id}/attach/", key)
        await comm.send_to(text_data=json.dumps({"type": "start", "cols": 80, "rows": 24}))
        msg = json.loads(await comm.receive_from(5))
        assert msg["type"] == "error" and "TTY" in msg["message"]
        assert await comm.receive_output(5) == {"type": "websocket.close", "code": 4400}

    with override_settings(LIVE_EXEC_GRACE=1):
        async_to_sync(scenario)()


def test_stats_samples_arrive_about_every_second(world):
    host, olga, key = world
    c = run(olga, "busy", "sh -c 'while true; do :; done'")

    async def scenario():
        comm, connected = await open_socket(f"/ws/hosts/{host.pk}/containers/{c.engine_id}/stats/", key)
        overview, _ = await open_socket(f"/ws/hosts/{host.pk}/stats/", key)
        samples = [json.loads(await comm.receive_from(5)) for _ in range(3)]
        assert all(s["type"] == "stats" for s in samples)
        assert samples[-1]["mem"] > 0 and samples[-1]["pids"] >= 1
        assert samples[-1]["cpu"] > 10.0, samples  # a busy loop
        assert HUB.opened[("stats", host.engine_url, c.engine_id)] == 1  # shared by both sockets
        # CPU use is a difference between two samples: the overview's first sample of a container can say 0.
        for _ in range(6):
            total = json.loads(await overview.receive_from(5))
            if total["containers"] and total["cpu"] > 0:
                break
        assert total["containers"][c.engine_id]["name"] == "busy" and total["cpu"] > 0, total
        await comm.disconnect()
        await overview.disconnect()

    async_to_sync(scenario)()
