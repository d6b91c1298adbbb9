"""Logs sockets: the tail first, then the one shared follow stream, without repeating a line; the last socket
to leave stops the engine stream."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync

from tests.unit.dockweb.live_support import keep_test_transaction, open_socket, session_cookie  # noqa: F401

T0 = "2026-11-27T20:00:00.000000001Z"
T1 = "2026-11-27T20:00:01.000000001Z"
T2 = "2026-11-27T20:00:02.000000001Z"


class FakeLogs:
    """The engine's logs endpoint: a history, and follow streams fed from one queue per follower."""

    def __init__(self) -> None:
        self.history = [(T0, "out", "zero"), (T1, "out", "one"), (T1, "err", "one again")]
        self.followers: list[asyncio.Queue] = []
        self.follows_opened = 0
        self.follows_open = 0

    async def call_json(self, url, method, path, params=None, body=None):
        return {"State": {"Running": True}, "Config": {"Tty": False}}

    async def log_lines(self, url, engine_id, *, follow, tail="all", since=None, until=None, tty=None):
        if not follow:
            yield list(self.history[-tail:] if isinstance(tail, int) and tail else self.history)
            return
        self.follows_opened += 1
        self.follows_open += 1
        queue: asyncio.Queue = asyncio.Queue()
        self.followers.append(queue)
        try:
            yield list(self.history[-2:])  # the last second again, as since= replays it
            while True:
                batch = await queue.get()
                if batch is None:
                    return
                yield batch
        finally:
            self.follows_open -= 1

    def write(self, batch) -> None:
        self.history.extend(batch or [])
        for q in self.followers:
            q.put_nowait(batch)


@pytest.fixture
def fake(monkeypatch):
    from dockweb.live import engine

    fake = FakeLogs()
    monkeypatch.setattr(engine, "call_json", fake.call_json)
    monkeypatch.setattr(engine, "log_lines", fake.log_lines)
    return fake


@pytest.fixture
def red(make_user):
    from dockweb.accounts.models import Team
    from dockweb.containers.models import Container
    from dockweb.hosts.models import Host

    host = Host.default()
    user = make_user("vera", teams={"red": "viewer"})
    c = Container.objects.create(host=host, engine_id="a" * 64, name="red-web", team=Team.objects.get(slug="red"))
    return f"/ws/hosts/{host.pk}/containers/{c.engine_id}/logs/", user


async def texts(comm, n: int) -> list[str]:
    """Receive until n lines arrived; return their texts."""
    got: list[str] = []
    while len(got) < n:
        msg = json.loads(await comm.receive_from(3))
        assert msg["type"] == "lines", msg
        got += [line["l"] for line in msg["lines"]]
    return got


def test_three_sockets_share_one_follow_and_see_each_line_once(fake, red):
    from dockweb.live.streams import HUB

    path, user = red
    _, key = session_cookie(user)

    async def scenario():
        comms = []
        for _ in range(3):
            comm, connected = await open_socket(path, key)
            assert connected
            assert await texts(comm, 3) == ["zero", "one", "one again"]
            comms.append(comm)
        await asyncio.sleep(0.05)
        assert fake.follows_opened == 1 and HUB.running("logs") == 1
        fake.write([(T2, "out", "two")])
        for comm in comms:
            assert await texts(comm, 1) == ["two"]  # the replayed "one" lines were dropped
            assert await comm.receive_nothing(0.05)
        for comm in comms:
            await comm.disconnect()
        await asyncio.sleep(0.05)
        assert fake.follows_open == 0 and HUB.running("logs") == 0

    async_to_sync(scenario)()


def test_the_end_of_the_stream_says_end(fake, red):
    path, user = red
    _, key = session_cookie(user)

    async def scenario():
        comm, _ = await open_socket(path + "?tail=1", key)
        assert await texts(comm, 1) == ["one again"]
        await asyncio.sleep(0.05)
        fake.write(None)
        assert json.loads(await comm.receive_from(3)) == {"type": "end"}
        await comm.disconnect()

    async_to_sync(scenario)()


def test_a_tail_with_until_is_not_followed(fake, red):
    path, user = red
    _, key = session_cookie(user)

    async def scenario():
        comm, _ = await open_socket(path + f"?until={T1}", key)
        assert await texts(comm, 3) == ["zero", "one", "one again"]
        assert json.loads(await comm.receive_from(3)) == {"type": "end"}
        assert fake.follows_opened == 0
        await comm.disconnect()

    async_to_sync(scenario)()
