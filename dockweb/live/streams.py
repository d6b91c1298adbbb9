"""The stream hub of a web process: one engine stream per object (logs follow, stats), fanned out to a group.

The first consumer that subscribes to an object starts its reader task; every consumer joins the object's channel
group; the reader publishes each batch once to the group; the last unsubscribe cancels the reader. Group names
carry this process's token: with several web processes, each reads the engine once and none doubles another's
lines in a shared group.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections import Counter, OrderedDict
from contextlib import aclosing
from typing import Callable

from json.encoder import encode_basestring as _quote

from channels.layers import get_channel_layer

from dockweb.core.errors import EngineError
from dockweb.live import engine

log = logging.getLogger("dockweb.live")

PROCESS = secrets.token_hex(4)
BATCH_LINES = 1000


class Stopped(Exception):
    """The stream was stopped (its last viewer left) while it was publishing."""


class Stream:
    """One engine stream of one object, read by one task, published to one group."""

    kind = ""

    def __init__(self, engine_url: str, engine_id: str, group: str) -> None:
        self.engine_url = engine_url
        self.engine_id = engine_id
        self.group = group
        self.subscribers = 0
        self.task: asyncio.Task | None = None
        self.done = False
        self.seq = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.engine_url, self.engine_id)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._main(), name=f"live-{self.kind}-{self.engine_id[:12]}")

    def stop(self) -> None:
        self.done = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def publish(self, message: dict) -> None:
        if self.done:
            raise Stopped
        self.seq += 1
        message["seq"] = self.seq
        await get_channel_layer().group_send(self.group, message)
        if self.done:
            # channels_redis over redis-py can swallow task.cancel() inside group_send: the task carries on
            # ("cancelling") with its engine connection open. Stop here instead of trusting the cancel.
            raise Stopped

    async def _main(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Stopped:
            pass
        except EngineError as e:
            await self._say_error(e.message)
        except Exception as e:  # the reader must tell its viewers, never die silently
            log.exception("live %s stream of %s failed", self.kind, self.engine_id[:12])
            await self._say_error(f"{type(e).__name__}: {e}")
        finally:
            self.done = True
            HUB.forget(self)

    async def _say_error(self, message: str) -> None:
        try:
            await self.publish({"type": f"{self.kind}.error", "message": message})
        except Exception:
            pass

    async def run(self) -> None:
        raise NotImplementedError


class LogStream(Stream):
    """Follow a container's log from (a second before) now and publish pre-encoded "lines" messages."""

    kind = "logs"

    async def run(self) -> None:
        # From a second back: lines written while the follow request is on its way are not lost; consumers
        # drop what their own tail fetch already showed.
        since = f"{time.time() - 1.0:.9f}"
        # aclosing: a cancel that lands while we publish (the generator waits at its yield) must close the engine
        # connection now, not when the generator is garbage-collected.
        async with aclosing(engine.log_lines(self.engine_url, self.engine_id, follow=True, tail="all",
                                             since=since)) as batches:
            async for lines in batches:
                for i in range(0, len(lines), BATCH_LINES):
                    await self.publish_lines(lines[i:i + BATCH_LINES])
        await self.publish({"type": "logs.end"})

    async def publish_lines(self, lines: list[tuple[str, str, str]]) -> None:
        ref = keep_text(encode_lines(lines))
        await self.publish({"type": "logs.batch", "ref": ref, "first": engine.parse_time(lines[0][0]),
                            "last": engine.parse_time(lines[-1][0]), "count": len(lines)})


# The text of each batch waits here for this process's viewers, and the channel layer carries only a notice with
# its ref: through Redis, each viewer's copy of a 130 KB batch would be written to Redis and read back (about
# 4 us of CPU per line in the web process and Redis, times the number of viewers). The hub's groups never leave
# this process (their names carry PROCESS), so every viewer can reach the text. Bounded in bytes and in age: a
# viewer that falls further behind than that is told it skipped lines.
TEXTS_MAX_BYTES = 8 * 1024 * 1024
TEXTS_MAX_AGE = 10.0
_texts: OrderedDict[int, tuple[str, float]] = OrderedDict()
_texts_bytes = 0
_refs = itertools.count(1)


def keep_text(text: str) -> int:
    """Keep a batch's text for the viewers of this process; return the ref its notice carries."""
    global _texts_bytes
    ref = next(_refs)
    now = time.monotonic()
    _texts[ref] = (text, now)
    _texts_bytes += len(text)
    while _texts and (_texts_bytes > TEXTS_MAX_BYTES or next(iter(_texts.values()))[1] < now - TEXTS_MAX_AGE):
        _texts_bytes -= len(_texts.popitem(last=False)[1][0])
    return ref


def batch_text(message: dict) -> str | None:
    """Return the text of a "logs.batch" notice (None if it is gone: the viewer fell too far behind)."""
    if "text" in message:
        return message["text"]
    kept = _texts.get(message.get("ref"))
    return kept[0] if kept else None


def encode_lines(lines: list[tuple[str, str, str]]) -> str:
    """Encode lines as the "lines" message of the protocol, once for every viewer (JSON escapes all markup)."""
    return '{"type":"lines","lines":[' + ",".join(
        ['{"t":%s,"s":"%s","l":%s}' % (_quote(t), s, _quote(text)) for t, s, text in lines]) + "]}"


class StatsStream(Stream):
    """Follow a container's stats (about one document a second) and publish computed samples."""

    kind = "stats"

    async def run(self) -> None:
        async with aclosing(engine.json_stream(self.engine_url, f"/containers/{self.engine_id}/stats",
                                               {"stream": 1})) as docs:
            async for doc in docs:
                await self.publish({"type": "stats.sample", "id": self.engine_id, "sample": sample_from_stats(doc)})
        await self.publish({"type": "stats.end", "id": self.engine_id})


def sample_from_stats(doc: dict) -> dict:
    """Compute the protocol's stats fields from an engine stats document, as the docker CLI does."""
    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    cpu_delta = ((cpu.get("cpu_usage") or {}).get("total_usage") or 0) - \
        ((pre.get("cpu_usage") or {}).get("total_usage") or 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    percent = cpu_delta / system_delta * online * 100.0 if cpu_delta > 0 and system_delta > 0 else 0.0
    mem = doc.get("memory_stats") or {}
    usage, details = mem.get("usage") or 0, mem.get("stats") or {}
    # The CLI subtracts the page cache that can be dropped: total_inactive_file (cgroup v1), inactive_file (v2).
    inactive = details.get("total_inactive_file", details.get("inactive_file", 0)) or 0
    if inactive < usage:
        usage -= inactive
    rx = tx = 0
    for net in (doc.get("networks") or {}).values():
        rx += net.get("rx_bytes") or 0
        tx += net.get("tx_bytes") or 0
    read = write = 0
    for entry in (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (entry.get("op") or "").lower()
        if op == "read":
            read += entry.get("value") or 0
        elif op == "write":
            write += entry.get("value") or 0
    read_at = engine.parse_time(doc.get("read") or "")
    return {"t": read_at / 1e9 if read_at > 0 else time.time(), "cpu": round(percent, 3), "mem": usage,
            "mem_limit": mem.get("limit") or 0, "net_rx": rx, "net_tx": tx, "blk_read": read, "blk_write": write,
            "pids": (doc.get("pids_stats") or {}).get("current") or 0}


class Hub:
    """The live streams of this process, by (kind, engine URL, engine id)."""

    def __init__(self) -> None:
        self.streams: dict[tuple[str, str, str], Stream] = {}
        self.opened: Counter = Counter()   # engine streams opened per key, for tests and the benchmark

    def subscribe(self, factory: Callable[[], Stream]) -> Stream:
        """Count one more viewer of the stream factory describes, starting its reader if none runs."""
        candidate = factory()
        stream = self.streams.get(candidate.key)
        if stream is None or stream.done:
            stream = self.streams[candidate.key] = candidate
            self.opened[candidate.key] += 1
            stream.start()
        stream.subscribers += 1
        return stream

    def unsubscribe(self, stream: Stream) -> None:
        """Count one viewer less; the last one stops the reader."""
        stream.subscribers -= 1
        if stream.subscribers <= 0:
            stream.stop()
            self.forget(stream)

    def forget(self, stream: Stream) -> None:
        if self.streams.get(stream.key) is stream:
            del self.streams[stream.key]

    def running(self, kind: str | None = None) -> int:
        """Return how many engine streams are open now (of one kind)."""
        return sum(1 for s in self.streams.values() if not s.done and (kind is None or s.kind == kind))


HUB = Hub()


def logs_group(host_id: int, engine_id: str) -> str:
    return f"live-logs-{PROCESS}-{host_id}-{engine_id[:64]}"


def stats_group(host_id: int, engine_id: str) -> str:
    return f"live-stats-{PROCESS}-{host_id}-{engine_id[:64]}"


def subscribe_logs(host, engine_id: str) -> Stream:
    return HUB.subscribe(lambda: LogStream(host.engine_url, engine_id, logs_group(host.pk, engine_id)))


def subscribe_stats(host, engine_id: str) -> Stream:
    return HUB.subscribe(lambda: StatsStream(host.engine_url, engine_id, stats_group(host.pk, engine_id)))
