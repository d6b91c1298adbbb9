"""docker cp endpoints: HEAD, GET and PUT /containers/{id}/archive, for running and stopped containers."""

from __future__ import annotations

from engine import state as st
from engine.api.server import Response, StreamResponse, empty
from engine.volumes import cp

STAT_HEADER = "X-Docker-Container-Path-Stat"


def _target(engine, ref: str) -> cp.CopyTarget:
    c = engine.containers.get(ref)
    spec = st.read_json(c.dir / "config.json") or {}
    user = (spec.get("process") or {}).get("user") or {}
    root = spec.get("root") or {}
    init_pid = c.state.pid if c.is_running and _is_init_of(c.state.pid, c.id) else 0
    return cp.CopyTarget(
        bundle=c.dir, init_pid=init_pid, overlay=(spec.get("annotations") or {}).get("dockweb.rootfs.overlay"),
        root_path=root.get("path") or "", readonly=bool(c.host_config.get("ReadonlyRootfs")),
        mounts=tuple(engine.containers.container_mounts(c.id)), ref=ref,
        tmpfs_dests=tuple((c.host_config.get("Tmpfs") or {}).keys()),
        owner=(int(user.get("uid") or 0), int(user.get("gid") or 0)) if c.config.get("User") else None)


def _is_init_of(pid: int, cid: str) -> bool:
    # A recorded pid can be reused once the container is gone: only enter it if it sits in the container's cgroup.
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return cid in f.read()
    except OSError:
        return False


def _event(engine, ref: str, action: str, path: str) -> None:
    c = engine.containers.get(ref)
    engine.events.publish("container", action, c.id, {"image": c.image_ref, "name": c.name, "path": path,
                                                      **c.labels})


def head_archive(engine, req, ref):
    doc = cp.stat_path(_target(engine, ref), req.arg("path") or "")
    resp = empty(200)
    resp.headers[STAT_HEADER] = cp.encode_stat(doc)
    return resp


def get_archive(engine, req, ref):
    path = req.arg("path") or ""
    doc, chunks = cp.read_archive(_target(engine, ref), path)
    _event(engine, ref, "archive-path", path)
    return StreamResponse(chunks, content_type="application/x-tar", headers={STAT_HEADER: cp.encode_stat(doc)})


def put_archive(engine, req, ref):
    path = req.arg("path") or ""
    cp.extract_archive(_target(engine, ref), path, req.body_stream(),
                       no_overwrite_dir_non_dir=req.flag("noOverwriteDirNonDir"),
                       copy_uid_gid=req.flag("copyUIDGID"))
    _event(engine, ref, "extract-to-dir", path)
    return Response(status=200, body=b"", content_type="")


ROUTES = [
    ("HEAD", r"/containers/(?P<ref>[^/]+)/archive", head_archive),
    ("GET", r"/containers/(?P<ref>[^/]+)/archive", get_archive),
    ("PUT", r"/containers/(?P<ref>[^/]+)/archive", put_archive),
]
