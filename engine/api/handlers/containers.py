"""Container endpoints of the Engine API: parse, call the manager, shape the answer."""

from __future__ import annotations

import json
import struct
import threading
import time

from engine import state as st
from engine.api.server import HIJACKED, StreamResponse, empty, json_response
from engine.containers import inspect as shape
from engine.errors import InvalidParameter, NotFound
from engine.runtime import logfile
from engine.runtime.launcher import Attach

RAW = "application/vnd.docker.raw-stream"
MUX = "application/vnd.docker.multiplexed-stream"
_FRAME = struct.Struct(">BxxxI")  # Docker's stdcopy header: stream id, 3 zero bytes, big-endian length
_LENGTH = struct.Struct(">I")


def create(engine, req):
    body = req.json()
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the request body must be an object")
    cid, warnings = engine.containers.create(body, req.arg("name"))
    return json_response({"Id": cid, "Warnings": warnings}, status=201)


def list_containers(engine, req):
    show_all = req.flag("all")
    limit = req.int_arg("limit", -1)
    size = req.flag("size")
    filters = req.filters()
    cs = sorted(engine.containers.all(), key=lambda c: c.created_ns, reverse=True)

    def image_id(ref):
        try:
            return engine.images.get(ref).id
        except NotFound:
            return None

    if "before" in filters or "since" in filters:
        cs = _before_since(engine, cs, filters)
    out = []
    for c in cs:
        implied_all = show_all or (limit or -1) > 0 or "status" in filters or "exited" in filters
        if not implied_all and not c.is_running:
            continue
        if not shape.matches_filters(c, filters, image_id):
            continue
        out.append(shape.list_item(c, size))
        if limit and limit > 0 and len(out) >= limit:
            break
    return json_response(out)


def _before_since(engine, cs, filters):
    for key in ("before", "since"):
        for ref in filters.get(key, []):
            pivot = engine.containers.get(ref)
            if key == "before":
                cs = [c for c in cs if c.created_ns < pivot.created_ns]
            else:
                cs = [c for c in cs if c.created_ns > pivot.created_ns]
    return cs


def inspect_container(engine, req, ref):
    c = engine.containers.get(ref)
    doc = shape.inspect_doc(c, engine.config)
    if req.flag("size"):
        doc["SizeRw"] = shape.dir_size(c.dir / "diff")
        doc["SizeRootFs"] = doc["SizeRw"]
    return json_response(doc)


def start(engine, req, ref):
    engine.containers.start(ref)
    return empty(204)


def stop(engine, req, ref):
    engine.containers.stop(ref, req.int_arg("t"), req.arg("signal"))
    return empty(204)


def restart(engine, req, ref):
    engine.containers.restart(ref, req.int_arg("t"), req.arg("signal"))
    return empty(204)


def kill(engine, req, ref):
    engine.containers.kill(ref, req.arg("signal"))
    return empty(204)


def pause(engine, req, ref):
    engine.containers.pause(ref)
    return empty(204)


def unpause(engine, req, ref):
    engine.containers.unpause(ref)
    return empty(204)


def remove(engine, req, ref):
    engine.containers.remove(ref, force=req.flag("force"), volumes=req.flag("v"))
    return empty(204)


def rename(engine, req, ref):
    engine.containers.rename(ref, req.arg("name") or "")
    return empty(204)


def prune(engine, req):
    return json_response(engine.containers.prune(req.filters()))


def wait(engine, req, ref):
    block = engine.containers.wait(ref, req.arg("condition") or "not-running")

    def body():
        # The first (empty) chunk makes the server flush the headers now: `docker run` sends
        # start only after it has them, so holding them back until exit would deadlock.
        yield b""
        result = {}
        done = threading.Event()

        def run():
            result.update(block())
            done.set()

        threading.Thread(target=run, daemon=True).start()
        while not done.wait(1.0):
            yield b""
        yield json.dumps(result).encode() + b"\n"

    return StreamResponse(body(), "application/json")


def resize(engine, req, ref):
    engine.containers.resize(ref, req.int_arg("h", 0), req.int_arg("w", 0))
    return empty(200)


def attach(engine, req, ref):
    c = engine.containers.get(ref)
    if not req.flag("stream") and req.flag("logs"):
        return _logs_response(c, stdout=req.flag("stdout"), stderr=req.flag("stderr"))

    def answer() -> Attach:
        # Called by the manager under the container's lock: the client may send start the moment it reads
        # the 101, and that start must find this attach registered.
        sock, pending = req.hijack(RAW if c.tty else MUX)
        return Attach(fd=sock.detach(), stdin=req.flag("stdin"), stdout=req.flag("stdout"),
                      stderr=req.flag("stderr"), framed=not c.tty, pending=pending)

    engine.containers.attach(c.id, answer)
    return HIJACKED


def logs(engine, req, ref):
    c = engine.containers.get(ref)
    stdout, stderr = req.flag("stdout"), req.flag("stderr")
    if not stdout and not stderr:
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    since = _time_arg(req, "since")
    until = _time_arg(req, "until")
    tail_arg = req.arg("tail") or "all"
    tail = None
    if tail_arg != "all":
        try:
            tail = int(tail_arg)
        except ValueError:
            tail = None
        if tail is not None and tail < 0:
            tail = None
    return _logs_response(c, stdout, stderr, since, until, tail, req.flag("follow"), req.flag("timestamps"),
                          engine)


def _time_arg(req, name):
    v = req.arg(name)
    if not v or v == "0":
        return None
    try:
        return int(st.parse_time(v) * 1e9)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {v}")


def _logs_response(c, stdout, stderr, since=None, until=None, tail=None, follow=False, timestamps=False,
                   engine=None):
    path = c.dir / "container-json.log"
    streams = {"stdout"} if stdout else set()
    if stderr:
        streams.add("stderr")

    def body():
        follow_now = follow and c.is_running
        batches = logfile.entry_batches(path, since_ns=since, until_ns=until, tail=tail, follow=follow_now,
                                        is_running=lambda: c.is_running, idle_tick=1.0 if follow_now else None)
        for batch in batches:
            # One chunk per batch (what one read of the log gave): a write per line would cap a follow at a few
            # tens of thousands of lines a second.
            yield _encode_log_batch(batch, streams, timestamps, c.tty) if batch else b""

    return StreamResponse(body(), RAW if c.tty else MUX)


_STREAM_IDS = {"stdout": _FRAME.pack(1, 0)[:4], "stderr": _FRAME.pack(2, 0)[:4]}


def _encode_log_batch(batch: list, streams: set[str], timestamps: bool, tty: bool) -> bytes:
    """Encode a batch of log entries as one block: raw bytes with a TTY, stdcopy frames without."""
    both = len(streams) == 2
    if timestamps:
        batch = [(s, t + b" " + data, t) for s, data, t in batch if both or s in streams]
    elif not both:
        batch = [e for e in batch if e[0] in streams]
    if tty:
        return b"".join([data for _, data, _ in batch])
    out: list[bytes] = []
    append, ids, length = out.append, _STREAM_IDS, _LENGTH.pack
    for stream, data, _ in batch:
        append(ids[stream])
        append(length(len(data)))
        append(data)
    return b"".join(out)


def top(engine, req, ref):
    c = engine.containers.get(ref)
    if not c.is_running:
        from engine.errors import Conflict
        raise Conflict(f"Container {c.id} is not running")
    cg = engine.containers._cgroup(c)
    return json_response(shape.top(c, req.arg("ps_args") or "", cg.pids()))


def stats(engine, req, ref):
    c = engine.containers.get(ref)
    stream = req.flag("stream", True)
    one_shot = req.flag("one-shot")
    cg = engine.containers._cgroup(c)

    def body():
        pre = None
        pre_ns = 0
        if not stream and not one_shot and c.is_running:
            # Two samples about a second apart, so the client can compute a CPU percentage.
            pre = shape.sample(cg)
            pre_ns = time.time_ns()
            time.sleep(1.0)
        while True:
            raw = shape.sample(cg) if c.is_running else None
            now = time.time_ns()
            yield json.dumps(shape.stats_doc(c, raw, pre, now, pre_ns)).encode() + b"\n"
            if not stream:
                return
            pre, pre_ns = raw, now
            time.sleep(1.0)

    return StreamResponse(body(), "application/json")


# -- builder: docker export and docker diff ---------------------------------------------------------------------------

def export(engine, req, ref):
    """GET /containers/{id}/export: the container's filesystem as a tar, composed from its layers (no mount)."""
    return StreamResponse(engine.builder.export(ref), "application/x-tar")


def changes(engine, req, ref):
    """GET /containers/{id}/changes: docker diff's list ([{"Path", "Kind"}]); an unchanged container gives null."""
    return json_response(engine.builder.changes(ref) or None)


R = r"(?P<ref>[^/]+)"
ROUTES = [
    ("POST", r"/containers/create", create),
    ("GET", r"/containers/json", list_containers),
    ("POST", r"/containers/prune", prune),
    ("GET", rf"/containers/{R}/json", inspect_container),
    ("POST", rf"/containers/{R}/start", start),
    ("POST", rf"/containers/{R}/stop", stop),
    ("POST", rf"/containers/{R}/restart", restart),
    ("POST", rf"/containers/{R}/kill", kill),
    ("POST", rf"/containers/{R}/pause", pause),
    ("POST", rf"/containers/{R}/unpause", unpause),
    ("POST", rf"/containers/{R}/rename", rename),
    ("POST", rf"/containers/{R}/wait", wait),
    ("POST", rf"/containers/{R}/resize", resize),
    ("POST", rf"/containers/{R}/attach", attach),
    ("GET", rf"/containers/{R}/logs", logs),
    ("GET", rf"/containers/{R}/top", top),
    ("GET", rf"/containers/{R}/stats", stats),
    ("GET", rf"/containers/{R}/export", export),
    ("GET", rf"/containers/{R}/changes", changes),
    ("DELETE", rf"/containers/{R}", remove),
]
