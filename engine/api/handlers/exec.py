"""Exec endpoints: create an exec instance, start it through the container's supervisor, inspect, resize."""

from __future__ import annotations

import base64
import os

from engine import state as st
from engine.api.server import HIJACKED, empty, json_response
from engine.errors import Conflict, InvalidParameter
from engine.runtime import control

RAW = "application/vnd.docker.raw-stream"
MUX = "application/vnd.docker.multiplexed-stream"


def create(engine, req, ref):
    body = req.json()
    c = engine.containers.get(ref)
    if c.state.status == "paused":
        raise Conflict(f"container {c.id} is paused, unpause the container before exec")
    if c.state.status != "running":
        raise Conflict(f"container {c.id} is not running")
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd or not isinstance(cmd, list):
        raise InvalidParameter("No exec command specified")
    env = body.get("Env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise InvalidParameter("json: cannot unmarshal Env: expected a list of strings")
    size = body.get("ConsoleSize") or None
    if size is not None and (not isinstance(size, list) or len(size) != 2):
        raise InvalidParameter("ConsoleSize must be [height, width]")
    eid = st.new_id()
    doc = {
        "ID": eid, "ContainerID": c.id, "Running": False, "ExitCode": None, "Pid": 0,
        "OpenStdin": bool(body.get("AttachStdin")), "OpenStdout": bool(body.get("AttachStdout")),
        "OpenStderr": bool(body.get("AttachStderr")), "CanRemove": False,
        "DetachKeys": body.get("DetachKeys") or "",
        "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": cmd[0], "arguments": cmd[1:],
                          "privileged": bool(body.get("Privileged")), "user": body.get("User") or ""},
        "_env": env, "_cwd": body.get("WorkingDir") or "", "_size": size, "_started": False,
    }
    engine.containers.execs.add(doc)
    engine.events.publish("container", f"exec_create: {' '.join(cmd)}", c.id,
                          {"image": c.image_ref, "name": c.name, "execID": eid})
    return json_response({"Id": eid}, status=201)


def _process(engine, c, doc) -> dict:
    """Build the exec's OCI process from the container's process and the exec options."""
    from engine.containers import spec as specmod
    cspec = st.read_json(c.dir / "config.json") or {}
    base = cspec.get("process", {})
    pc = doc["ProcessConfig"]
    env = specmod.merge_env(base.get("env", []), doc["_env"])
    user = dict(base.get("user", {"uid": 0, "gid": 0}))
    caps = dict(base.get("capabilities", {}))
    if pc["user"]:
        root = f"/proc/{c.state.pid}/root"
        uid, gid, groups = specmod.resolve_user(pc["user"], lambda p: _read_in(root, p))
        user = {"uid": uid, "gid": gid, "additionalGids": groups}
        caps = specmod.caps_for_user(caps, uid)
    process = {
        "terminal": pc["tty"], "args": [pc["entrypoint"], *pc["arguments"]], "env": env,
        "cwd": doc["_cwd"] or base.get("cwd", "/"), "user": user, "capabilities": caps,
        "noNewPrivileges": base.get("noNewPrivileges", False), "rlimits": base.get("rlimits", []),
    }
    if doc["_size"]:
        process["consoleSize"] = {"height": doc["_size"][0], "width": doc["_size"][1]}
    return process


def _read_in(root: str, path: str) -> bytes | None:
    try:
        with open(os.path.join(root, path.lstrip("/")), "rb") as f:
            return f.read()
    except OSError:
        return None


def start(engine, req, eid):
    doc = engine.containers.execs.get(eid)
    body = req.json()
    c = engine.containers.get(doc["ContainerID"])
    if doc["_started"]:
        raise Conflict(f"Error: Exec command {eid} is already running")
    if c.state.status != "running":
        raise Conflict(f"container {c.id} is not running")
    detach = bool(body.get("Detach"))
    tty = bool(body.get("Tty", doc["ProcessConfig"]["tty"]))
    doc["ProcessConfig"]["tty"] = tty
    if body.get("ConsoleSize"):
        doc["_size"] = body["ConsoleSize"]
    process = _process(engine, c, doc)
    doc["_started"] = True
    msg = {"op": "exec", "id": eid, "process": process, "stdin": doc["OpenStdin"],
           "stdout": doc["OpenStdout"], "stderr": doc["OpenStderr"], "framed": not tty, "detach": detach}
    engine.events.publish("container", f"exec_start: {' '.join(process['args'])}", c.id,
                          {"image": c.image_ref, "name": c.name, "execID": eid})
    if detach:
        reply = control.request(c.dir, msg)
        _check(reply)
        return empty(200)
    sock, pending = req.hijack(RAW if tty else MUX)
    fd = sock.detach()
    if pending:
        msg["pending"] = base64.b64encode(pending).decode()
    try:
        reply = control.request(c.dir, msg, [fd])
    finally:
        os.close(fd)
    if not reply.get("ok"):
        # Too late for an HTTP error: the error text goes nowhere but the exec record.
        doc["ExitCode"] = 126
    return HIJACKED


def _check(reply: dict) -> None:
    if not reply.get("ok"):
        raise Conflict(reply.get("error") or "exec failed")


def inspect(engine, req, eid):
    doc = engine.containers.execs.get(eid)
    c = None
    try:
        c = engine.containers.get(doc["ContainerID"])
    except Exception:
        pass
    rec = st.read_json(c.dir / "execs" / f"{eid}.json") if c else None
    out = {k: v for k, v in doc.items() if not k.startswith("_")}
    if rec:
        out["Running"] = bool(rec.get("running"))
        out["Pid"] = rec.get("pid", 0)
        if rec.get("exit_code") is not None:
            out["ExitCode"] = rec["exit_code"]
    return json_response(out)


def resize(engine, req, eid):
    doc = engine.containers.execs.get(eid)
    c = engine.containers.get(doc["ContainerID"])
    h, w = req.int_arg("h", 0), req.int_arg("w", 0)
    if not doc["_started"]:
        # The CLI may send the resize before exec start reaches us: remember it for the start.
        doc["_size"] = [h, w]
        return empty(200)
    control.request(c.dir, {"op": "resize", "exec": eid, "height": h, "width": w})
    return empty(200)


ROUTES = [
    ("POST", r"/containers/(?P<ref>[^/]+)/exec", create),
    ("POST", r"/exec/(?P<eid>[^/]+)/start", start),
    ("POST", r"/exec/(?P<eid>[^/]+)/resize", resize),
    ("GET", r"/exec/(?P<eid>[^/]+)/json", inspect),
]
