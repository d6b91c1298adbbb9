"""The last logs socket to leave closes the engine connection at once, even while the stream is publishing."""

from __future__ import annotations

import asyncio
import gc

from asgiref.sync import async_to_sync

from tests.unit.dockweb.live_support import keep_test_transaction, open_socket, session_cookie  # noqa: F401
from tests.unit.dockweb.test_live_logs_sharing import T2, fake, red, texts  # noqa: F401


def test_leaving_while_the_stream_publishes_closes_the_engine_follow_at_once(fake, red, monkeypatch):
    from dockweb.live import streams

    path, user = red
    _, key = session_cookie(user)
    publishing = asyncio.Event()
    publish = streams.Stream.publish

    async def slow_publish(self, message):
        if message["type"] == "logs.batch" and "stuck" in message["text"]:
            publishing.set()
            await asyncio.Event().wait()  # a channel layer that does not answer: the reader waits here
        await publish(self, message)

    monkeypatch.setattr(streams.Stream, "publish", slow_publish)

    async def scenario():
        comm, connected = await open_socket(path, key)
        assert connected
        assert await texts(comm, 3) == ["zero", "one", "one again"]
        await asyncio.sleep(0.05)
        fake.write([(T2, "out", "stuck")])
        await asyncio.wait_for(publishing.wait(), 3)
        assert fake.follows_open == 1
        await comm.disconnect()
        for _ in range(20):
            await asyncio.sleep(0.01)
        # Not left to the garbage collector: the stream's task holds a cycle that keeps the reader alive.
        assert fake.follows_open == 0 and streams.HUB.running("logs") == 0

    gc.disable()
    try:
        async_to_sync(scenario)()
    finally:
        gc.enable()
