"""The last logs socket to leave closes the engine follow, even when the channel layer swallows the cancel.

channels_redis 4.3 over redis-py 8.1 can swallow a task's cancellation inside group_send: the task goes on
("cancelling") with its engine connection open. The stream must stop at its next publish anyway.
"""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync

from tests.unit.dockweb.live_support import keep_test_transaction, open_socket, session_cookie  # noqa: F401
from tests.unit.dockweb.test_live_logs_sharing import T2, fake, red, texts  # noqa: F401


def test_leaving_while_the_stream_publishes_closes_the_engine_follow(fake, red, monkeypatch):
    from channels.layers import get_channel_layer

    from dockweb.live import streams

    path, user = red
    _, key = session_cookie(user)
    layer = get_channel_layer()
    group_send = layer.group_send
    publishing = asyncio.Event()

    async def swallowing_group_send(group, message):
        if message.get("type") == "logs.batch" and "slow" in streams.batch_text(message):
            publishing.set()
            try:
                await asyncio.sleep(0.3)  # a slow Redis round trip...
            except asyncio.CancelledError:
                pass  # ...that eats the cancel, as redis-py sometimes does
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", swallowing_group_send)

    async def scenario():
        comm, connected = await open_socket(path, key)
        assert connected
        assert await texts(comm, 3) == ["zero", "one", "one again"]
        await asyncio.sleep(0.05)
        fake.write([(T2, "out", "slow")])
        await asyncio.wait_for(publishing.wait(), 3)
        assert fake.follows_open == 1
        await comm.disconnect()
        for _ in range(100):
            if fake.follows_open == 0:
                break
            await asyncio.sleep(0.01)
        assert fake.follows_open == 0, "the engine follow stayed open after the last socket left"
        assert streams.HUB.running("logs") == 0

    async_to_sync(scenario)()


def test_a_socket_that_dies_on_a_send_still_releases_the_engine_follow(fake, red, monkeypatch):
    """Daphne raises when a handler sends on a socket the browser has just closed: the consumer ends without a
    disconnect, and must still give back its share of the engine stream."""
    from dockweb.live import consumers, streams

    path, user = red
    _, key = session_cookie(user)
    send = consumers.LogsConsumer.send

    async def send_on_closed_socket(self, text_data=None, bytes_data=None, close=False):
        if text_data and "gone" in text_data:
            raise ConnectionError("Attempt to send on a closed protocol")
        await send(self, text_data=text_data, bytes_data=bytes_data, close=close)

    monkeypatch.setattr(consumers.LogsConsumer, "send", send_on_closed_socket)

    async def scenario():
        comm, connected = await open_socket(path, key)
        assert connected
        assert await texts(comm, 3) == ["zero", "one", "one again"]
        await asyncio.sleep(0.05)
        assert fake.follows_open == 1
        fake.write([(T2, "out", "gone")])
        for _ in range(100):
            if fake.follows_open == 0:
                break
            await asyncio.sleep(0.01)
        assert fake.follows_open == 0, "the engine follow stayed open after its only socket died"
        assert streams.HUB.running("logs") == 0
        try:
            await comm.wait(1)
        except Exception:
            pass  # the consumer's own error, as Daphne would log it

    async_to_sync(scenario)()
