"""Websocket consumers of the live pages: logs, exec and attach terminals, stats, events and job progress.

Each one authenticates from the session and checks the user's role on its object before any data flows; a refusal
accepts only to close at once with a code the page can show (4401 anonymous, 4403 role too low, 4404 unknown or
another team's). While open, a socket re-checks the session and the role every RECHECK seconds, and at once when
the user's group says the user logged out or changed teams; a failed check closes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from importlib import import_module
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.crypto import constant_time_compare

from dockweb.accounts.permissions import can, get_for_user, is_site_admin, team_roles, visible
from dockweb.containers.models import Container
from dockweb.core.errors import EngineError
from dockweb.core.events import host_group, job_group
from dockweb.hosts.models import Host
from dockweb.live import engine, exec as sessions, streams
from dockweb.live.signals import user_group

log = logging.getLogger("dockweb.live")

RECHECK = 2.0
# Bytes the web server may hold for a slow browser before a stream waits for it to catch up.
LOGS_BACKLOG = 4 * 1024 * 1024
TERMINAL_BACKLOG = 256 * 1024

ANONYMOUS, FORBIDDEN, UNKNOWN, BAD_REQUEST = 4401, 4403, 4404, 4400


def send_backlog(consumer) -> tuple[int, bool] | None:
    """Return (bytes queued by the web server for this socket, disconnected), or None when it cannot tell.

    Daphne hands each consumer send=partial(server.handle_reply, protocol): the protocol's Twisted transport
    holds what the browser has not taken yet.
    """
    protocol = (getattr(consumer.base_send, "args", None) or (None,))[0]
    transport = getattr(protocol, "transport", None)
    if transport is None or not hasattr(transport, "_tempDataLen"):
        return None
    return len(transport.dataBuffer) + transport._tempDataLen, bool(getattr(transport, "disconnected", False))


def session_user_id(session_key: str | None, user) -> bool:
    """Answer whether the session still exists and still logs in this user (a logout deletes it)."""
    if not session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    if str(store.get(SESSION_KEY, "")) != str(user.pk):
        return False
    stored = store.get(HASH_SESSION_KEY) or ""
    return bool(stored) and constant_time_compare(stored, user.get_session_auth_hash())


class LiveConsumer(AsyncWebsocketConsumer):
    """Authenticate, authorise on the object, accept, then keep checking; subclasses stream."""

    backlog_limit = LOGS_BACKLOG

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if getattr(self, "released", True) is False:
                await self._release_after_crash()

    async def _release_after_crash(self) -> None:
        # A consumer can end without websocket.disconnect: an exception in a handler ends it at once (Daphne raises
        # when a handler sends on a socket the browser has just closed). Release what it holds all the same, or
        # the engine stream it shares would stay open for a subscriber that is gone.
        try:
            for group in list(self.groups):
                await self.channel_layer.group_discard(group, self.channel_name)
            await self.disconnect(None)
        except Exception:
            log.exception("releasing a live socket that ended without a disconnect")

    async def connect(self) -> None:
        self.closed = False
        self.released = False
        self.tasks: list[asyncio.Task] = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return await self.refuse(ANONYMOUS)
        self.user_id = user.pk
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        self.kwargs = self.scope["url_route"]["kwargs"]
        self.query = {k: v[-1] for k, v in parse_qs(self.scope.get("query_string", b"").decode()).items()}
        code = await database_sync_to_async(self._check)()
        if code is not None:
            return await self.refuse(code)
        await self.accept()
        await self.join(user_group(self.user_id))
        self.tasks.append(asyncio.get_running_loop().create_task(self._recheck_loop()))
        await self.opened()

    async def dispatch(self, message: dict) -> None:
        # Channels' dispatch first runs close_old_connections in the one thread that serves every consumer's
        # database calls: a hop per log batch and keystroke, queued behind any slow query. These handlers reach
        # the database only through database_sync_to_async, which does that cleanup itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def refuse(self, code: int) -> None:
        # Accept only to be able to give the page a reason: a close before accept is a bare HTTP 403.
        self.closed = True
        await self.accept()
        await self.close(code)

    def _check(self) -> int | None:
        """Return None if the session still holds and the user may act on the object, else the close code."""
        user = get_user_model().objects.filter(pk=self.user_id).first()
        if user is None or not user.is_active or not session_user_id(self.session_key, user):
            return ANONYMOUS
        try:
            self.obj = self.authorize(user)
        except Http404:
            return UNKNOWN
        except PermissionDenied:
            return FORBIDDEN
        self.user = user
        return None

    def authorize(self, user):
        """Return the object of the socket if user may use it (raise Http404 / PermissionDenied)."""
        raise NotImplementedError

    async def opened(self) -> None:
        """Start streaming (the socket is accepted and authorised)."""

    async def revoked(self) -> None:
        """The user lost access: stop what the socket started."""

    async def join(self, group: str) -> None:
        if group not in self.groups:
            self.groups.append(group)
            await self.channel_layer.group_add(group, self.channel_name)

    async def leave(self, group: str) -> None:
        if group in self.groups:
            self.groups.remove(group)
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _recheck_loop(self) -> None:
        while not self.closed:
            await asyncio.sleep(RECHECK)
            await self.recheck()

    async def recheck(self) -> None:
        if self.closed:
            return
        code = await database_sync_to_async(self._check)()
        if code is not None and not self.closed:
            log.info("live socket of user %s closed: %s", self.user_id, code)
            self.closed = True
            await self.revoked()
            await self.close(code)

    async def user_changed(self, message: dict) -> None:
        await self.recheck()

    async def disconnect(self, code) -> None:
        self.closed = True
        self.released = True
        current = asyncio.current_task()
        for task in getattr(self, "tasks", []):
            if task is not current:
                task.cancel()
        await self.closing()

    async def closing(self) -> None:
        """The socket closed: release what it holds."""

    async def send_json(self, message: dict) -> None:
        await self.send(text_data=json.dumps(message))

    async def wait_for_room(self, limit: int | None = None) -> None:
        """Wait while the web server holds more than limit bytes for this browser (backpressure)."""
        limit = self.backlog_limit if limit is None else limit
        while True:
            state = send_backlog(self)
            if state is None or state[1] or state[0] <= limit or self.closed:
                return
            await asyncio.sleep(0.002)

    # helpers for the container sockets
    def container_for(self, user, action: str) -> Container:
        host = get_for_user(Host, user, str(self.kwargs["host_id"]), "view")
        return get_for_user(Container, user, self.kwargs["ref"], action, host=host)


# --- logs ------------------------------------------------------------------------------------------------------

class LogsConsumer(LiveConsumer):
    """The container's last lines, then new ones as they are written (one engine follow per container)."""

    def authorize(self, user):
        c = self.container_for(user, "logs")
        self.host = c.host
        return c

    async def opened(self) -> None:
        self.stream = None
        self.cut: int | None = None  # drop shared lines at or before this time (ns)
        self.seq = 0
        c = self.obj
        tail = self.query.get("tail", "1000")
        tail = tail if tail == "all" else (int(tail) if tail.isdigit() else 1000)
        since, until = self.query.get("since") or None, self.query.get("until") or None
        try:
            info = await engine.call_json(self.host.engine_url, "GET", f"/containers/{c.engine_id}/json")
            running = bool((info.get("State") or {}).get("Running"))
            tty = bool((info.get("Config") or {}).get("Tty"))
            follow = running and until is None
            if follow:
                # Join the shared stream before reading the tail: no line falls between the two.
                await self.join(streams.logs_group(self.host.pk, c.engine_id))
                self.stream = streams.subscribe_logs(self.host, c.engine_id)
            fetched_at = time.time_ns()
            last_t = ""
            async for lines in engine.log_lines(self.host.engine_url, c.engine_id, follow=False, tail=tail,
                                                since=since, until=until, tty=tty):
                for i in range(0, len(lines), streams.BATCH_LINES):
                    await self.wait_for_room()
                    await self.send(text_data=streams.encode_lines(lines[i:i + streams.BATCH_LINES]))
                last_t = lines[-1][0]
            if follow:
                # The shared stream may repeat what the tail showed: drop its lines up to the tail's last time.
                # (The engine stamps all lines of one read with one time, and writes them at once.)
                if last_t:
                    self.cut = engine.parse_time(last_t)
                elif tail == 0:
                    self.cut = fetched_at
            else:
                await self.send_json({"type": "end"})
        except EngineError as e:
            await self.send_json({"type": "error", "message": e.message})

    async def logs_batch(self, message: dict) -> None:
        if self.closed:
            return
        if self.seq and message["seq"] > self.seq + 1:
            await self.send_json({"type": "skipped", "message": "the browser fell behind: some lines were skipped"})
        self.seq = message["seq"]
        text = streams.batch_text(message)  # the notice carries a ref to the text the hub keeps in this process
        if text is None:
            await self.send_json({"type": "skipped", "message": "the browser fell behind: some lines were skipped"})
            return
        if self.cut is not None:
            if message["first"] > self.cut:
                self.cut = None
            else:
                keep = [line for line in json.loads(text)["lines"] if engine.parse_time(line["t"]) > self.cut]
                if message["last"] > self.cut:
                    self.cut = None
                if not keep:
                    return
                text = json.dumps({"type": "lines", "lines": keep}, ensure_ascii=False, separators=(",", ":"))
        await self.wait_for_room()
        await self.send(text_data=text)

    async def logs_end(self, message: dict) -> None:
        await self.send_json({"type": "end"})
        await self._unsubscribe()

    async def logs_error(self, message: dict) -> None:
        await self.send_json({"type": "error", "message": message["message"]})
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            streams.HUB.unsubscribe(stream)
            await self.leave(stream.group)

    async def closing(self) -> None:
        if getattr(self, "stream", None) is not None:
            await self._unsubscribe()

    revoked = closing


# --- terminals ---------------------------------------------------------------------------------------------------

class ExecConsumer(LiveConsumer):
    """A terminal on a new (or resumed) TTY exec in the container: binary frames both ways."""

    kind = "exec"
    backlog_limit = TERMINAL_BACKLOG

    def authorize(self, user):
        c = self.container_for(user, "operate")
        c.host  # loaded here, in the database thread
        return c

    async def opened(self) -> None:
        self.session: sessions.Session | None = None

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.closed:
            return
        if bytes_data is not None:
            if self.session is not None:
                await self.session.write(bytes_data)
            return
        try:
            msg = json.loads(text_data or "")
            kind = msg.get("type")
        except (ValueError, AttributeError):
            return await self.send_json({"type": "error", "message": "messages are JSON objects with a type"})
        if kind == "start":
            await self.start(msg)
        elif kind == "resize" and self.session is not None:
            await self.session.resize(_int(msg.get("cols")), _int(msg.get("rows")))
        elif kind == "resize":
            pass
        else:
            await self.send_json({"type": "error", "message": f"unknown message type {kind!r}"})

    async def start(self, msg: dict) -> None:
        if self.session is not None:
            return await self.send_json({"type": "error", "message": "the session is already started"})
        cols, rows = _int(msg.get("cols"), 80), _int(msg.get("rows"), 24)
        c = self.obj
        found = sessions.find(msg.get("session") or "", user_id=self.user_id, engine_id=c.engine_id, kind=self.kind)
        if found is not None:
            self.session = found
            await self.send_json({"type": "session", "id": found.id, "resumed": True, "cmd": found.cmd})
            await found.attach(self, replay=True)
            await found.resize(cols, rows)
            return
        try:
            if self.kind == "exec":
                session = await sessions.open_exec(user=self.user, host=c.host, container=c,
                                                   cmd=sessions.command_of(msg.get("cmd")),
                                                   as_user=str(msg.get("user") or ""), cols=cols, rows=rows)
            else:
                session = await sessions.open_attach(user=self.user, host=c.host, container=c, cols=cols, rows=rows)
        except EngineError as e:
            await self.send_json({"type": "error", "message": e.message})
            self.closed = True
            return await self.close(BAD_REQUEST)
        self.session = session
        await self.send_json({"type": "session", "id": session.id, "resumed": False, "cmd": session.cmd})
        await session.attach(self, replay=True)  # what the process printed before this socket was attached

    # the session's sink
    async def send_output(self, data: bytes) -> None:
        await self.wait_for_room()
        await self.send(bytes_data=data)

    async def close_socket(self, code: int) -> None:
        self.closed = True
        self.session = None
        await self.close(code)

    async def closing(self) -> None:
        if getattr(self, "session", None) is not None:
            self.session.detach(self)

    async def revoked(self) -> None:
        if getattr(self, "session", None) is not None:
            session, self.session = self.session, None
            await session.terminate("access revoked")


class AttachConsumer(ExecConsumer):
    """The same terminal on a TTY container's main process."""

    kind = "attach"


def _int(value, default: int = 0) -> int:
    try:
        return max(0, min(int(value), 10000))
    except (TypeError, ValueError):
        return default


# --- stats -------------------------------------------------------------------------------------------------------

class StatsConsumer(LiveConsumer):
    """About one sample a second of one container (one engine stats stream per container)."""

    def authorize(self, user):
        c = self.container_for(user, "view")
        self.host = c.host
        return c

    async def opened(self) -> None:
        await self.join(streams.stats_group(self.host.pk, self.obj.engine_id))
        self.stream = streams.subscribe_stats(self.host, self.obj.engine_id)

    async def stats_sample(self, message: dict) -> None:
        await self.send_json({"type": "stats", **message["sample"]})

    async def stats_end(self, message: dict) -> None:
        await self.closing()

    async def stats_error(self, message: dict) -> None:
        await self.send_json({"type": "error", "message": message["message"]})
        await self.closing()

    async def closing(self) -> None:
        stream, self.stream = getattr(self, "stream", None), None
        if stream is not None:
            streams.HUB.unsubscribe(stream)

    revoked = closing


class HostStatsConsumer(LiveConsumer):
    """The host overview: the running containers the user may see, summed once a second."""

    def authorize(self, user):
        host = get_for_user(Host, user, str(self.kwargs["host_id"]), "view")
        self.watched = dict(visible(Container, user).filter(host=host, state=Container.State.RUNNING)
                            .values_list("engine_id", "name"))
        return host

    async def opened(self) -> None:
        self.subscribed: dict[str, streams.Stream] = {}
        self.latest: dict[str, dict] = {}
        await self.follow_watched()
        self.tasks.append(asyncio.get_running_loop().create_task(self._tick()))

    async def recheck(self) -> None:
        await super().recheck()
        if not self.closed:
            await self.follow_watched()

    async def follow_watched(self) -> None:
        """Subscribe to the containers now watched, unsubscribe from the others."""
        for engine_id in list(self.subscribed):
            if engine_id not in self.watched:
                streams.HUB.unsubscribe(self.subscribed.pop(engine_id))
                self.latest.pop(engine_id, None)
                await self.leave(streams.stats_group(self.obj.pk, engine_id))
        for engine_id in self.watched:
            if engine_id not in self.subscribed:
                await self.join(streams.stats_group(self.obj.pk, engine_id))
                self.subscribed[engine_id] = streams.subscribe_stats(self.obj, engine_id)

    async def stats_sample(self, message: dict) -> None:
        if message["id"] in self.subscribed:
            self.latest[message["id"]] = message["sample"]

    async def stats_end(self, message: dict) -> None:
        self.latest.pop(message["id"], None)

    async def stats_error(self, message: dict) -> None:
        self.latest.pop(message["id"], None)

    async def _tick(self) -> None:
        while not self.closed:
            await asyncio.sleep(1.0)
            containers = {}
            for engine_id, sample in self.latest.items():
                fields = {k: v for k, v in sample.items() if k != "t"}
                containers[engine_id] = {**fields, "name": self.watched.get(engine_id, "")}
            await self.send_json({"type": "stats", "t": time.time(), "containers": containers,
                                  "cpu": round(sum(s["cpu"] for s in containers.values()), 3),
                                  "mem": sum(s["mem"] for s in containers.values())})

    async def closing(self) -> None:
        for stream in getattr(self, "subscribed", {}).values():
            streams.HUB.unsubscribe(stream)
        self.subscribed = {}

    revoked = closing


# --- events and jobs -----------------------------------------------------------------------------------------

class EventsConsumer(LiveConsumer):
    """The host's engine events and job changes, only for objects the user may view."""

    def authorize(self, user):
        return get_for_user(Host, user, str(self.kwargs["host_id"]), "view")

    async def opened(self) -> None:
        self.seen: dict[tuple[str, str], tuple[float, bool]] = {}
        await self.join(host_group(self.obj.pk))

    async def recheck(self) -> None:
        self.seen = {}  # roles may have changed
        await super().recheck()

    async def engine_event(self, message: dict) -> None:
        event = message["event"]
        kind = event.get("Type") or ""
        actor = event.get("Actor") or {}
        ident = actor.get("ID") or event.get("id") or ""
        action = event.get("Action") or event.get("status") or ""
        if not await self._may_view(kind, ident, actor.get("Attributes") or {}):
            return
        await self.send_json({"type": "event", "kind": kind, "action": action, "id": ident,
                              "name": (actor.get("Attributes") or {}).get("name", ""),
                              "time": event.get("timeNano") or event.get("time")})

    async def job_event(self, message: dict) -> None:
        job = message["job"]
        if await self._may_view("job", str(job["id"]), {}):
            await self.send_json({"type": "event", "kind": "job", "action": job["state"], "id": job["id"],
                                  "job": job})

    async def _may_view(self, kind: str, ident: str, attributes: dict) -> bool:
        key = (kind, ident)
        cached = self.seen.get(key)
        if cached is not None and time.monotonic() - cached[0] < 5.0:
            return cached[1]
        allowed = await database_sync_to_async(self._visible)(kind, ident, attributes)
        if len(self.seen) > 5000:
            self.seen.clear()
        self.seen[key] = (time.monotonic(), allowed)
        return allowed

    def _visible(self, kind: str, ident: str, attributes: dict) -> bool:
        from dockweb.accounts.models import TEAM_LABEL, Team
        from dockweb.core.models import Job
        from dockweb.images.models import Image
        from dockweb.volumes.models import Volume

        user = self.user
        if is_site_admin(user):
            return True
        row = None
        if kind == "container":
            row = Container.objects.filter(host=self.obj, engine_id=ident).first()
        elif kind == "image":
            row = Image.lookup(visible(Image, user), ident, host=self.obj)
            if row is not None:
                return True
        elif kind == "volume":
            row = Volume.objects.filter(host=self.obj, name=ident).first()
        elif kind == "job":
            row = Job.objects.filter(pk=int(ident)).first() if ident.isdigit() else None
        if row is not None:
            return can(user, "view", row)
        # Gone already (destroy) or never tracked (networks): the team label it carried decides.
        slug = attributes.get(TEAM_LABEL)
        return bool(slug) and Team.objects.filter(slug=slug, pk__in=list(team_roles(user))).exists()


class JobConsumer(LiveConsumer):
    """A job's state and progress on every change, and its log as lines are appended."""

    def authorize(self, user):
        from dockweb.core.jobs import get_job

        return get_job(user, self.kwargs["job_id"])

    async def opened(self) -> None:
        await self.join(job_group(self.obj.pk))
        # Read after joining: an append made before this read is in it; later ones arrive as messages.
        self.read_at = time.time()
        job = await database_sync_to_async(_fresh_job)(self.obj.pk)
        await self.send_json({"type": "job", "job": job.to_dict()})
        await self.send_json({"type": "log", "text": job.log})

    async def job_update(self, message: dict) -> None:
        await self.send_json({"type": "job", "job": message["job"]})

    async def job_log(self, message: dict) -> None:
        if message.get("at", float("inf")) < self.read_at:
            return  # already in the log sent first
        await self.send_json({"type": "log", "text": message["text"]})


def _fresh_job(pk: int):
    from dockweb.core.models import Job

    return Job.objects.get(pk=pk)
