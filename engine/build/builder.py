"""The builder: run a parsed Dockerfile step by step (one image per step, one layer per filesystem change), commit."""

from __future__ import annotations

import copy
import json
import logging
import os
import posixpath
import select
import shutil
import socket
import stat
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from engine import state as st
from engine import tarsafe
from engine.build import cache as cachemod
from engine.build import context as ctxmod
from engine.build import instructions as ins
from engine.build.dockerfile import Dockerfile, DockerfileError, Instruction, Stage, _go_quote, expand, parse
from engine.config import EngineConfig
from engine.errors import EngineError, InvalidParameter, NoSuchImage, NotFound, SystemFailure
from engine.events import EventLog
from engine.images import diff as diffmod
from engine.images import reference
from engine.images.reference import short_id
from engine.images.store import Image, host_architecture
from engine.runtime.launcher import Attach

log = logging.getLogger(__name__)

DEFAULT_SHELL = ["/bin/sh", "-c"]
# Docker's empty-layer digest would come from a 1024-byte tar of zeros; an empty diff simply adds no layer.
_FRAME = struct.Struct(">BxxxI")


class BuildError(InvalidParameter):
    """A build step failed; code is what the CLI exits with (a RUN's exit code)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    """What POST /build asked for (the query parameters the CLI and docker-py send)."""

    dockerfile: str | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    rm: bool = True
    force_rm: bool = False
    quiet: bool = False
    network_mode: str = ""
    host_config: dict = field(default_factory=dict)   # Memory, MemorySwap, CpuShares, ... for RUN containers
    platform: str = ""
    auth: dict = field(default_factory=dict)           # X-Registry-Config: registry -> auth config


@dataclass
class _Stage:
    """The state of one stage while it is built."""

    stage: Stage
    doc: dict                         # the image config document being built (config, rootfs, history, ...)
    image_id: str = ""                # the current image ("" before the first commit of a FROM scratch)
    args: dict[str, str | None] = field(default_factory=dict)   # ARGs declared in this stage -> value
    cmd_set: bool = False

    @property
    def cfg(self) -> dict:
        return self.doc.setdefault("config", {})

    @property
    def shell(self) -> list[str]:
        return list(self.cfg.get("Shell") or DEFAULT_SHELL)


class Builder:
    """Builds images from Dockerfiles, commits containers, lists their changes and exports them."""

    def __init__(self, config: EngineConfig, events: EventLog, images, containers, registry=None) -> None:
        self.config = config
        self.events = events
        self.images = images
        self.containers = containers
        self.registry = registry
        self.work_dir = config.root / "build" / "tmp"
        self.trash_dir = config.root / "build" / "trash"
        # A crash mid-build leaves its context and scratch dirs here: nothing references them.
        for d in (self.work_dir, self.trash_dir):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True, exist_ok=True)
        self.cache = cachemod.BuildCache(config.root / "build" / "cache.json", self._image_exists)

    def discard(self, path: Path) -> None:
        """Remove a scratch tree without holding up the build: rename it away, delete it in the background.

        Unlinking hundreds of files costs more than creating them on a busy disk; the rename is what makes the
        tree gone (a crash leaves it in trash_dir, emptied at the next start).
        """
        target = self.trash_dir / f"{path.name}-{os.urandom(6).hex()}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return
        except OSError as e:
            log.warning("moving %s to the trash: %s", path, e)
            tarsafe.remove_tree(path)
            return
        threading.Thread(target=tarsafe.remove_tree, args=(target,), name="build-trash", daemon=True).start()

    def _image_exists(self, iid: str) -> bool:
        try:
            self.images.resolve(iid)
            return True
        except NotFound:
            return False

    # -- build ---------------------------------------------------------------------------------------------------

    def build(self, body: BinaryIO, opts: BuildOptions) -> Iterator[dict | None]:
        """Build from a context stream; yield Docker's JSON messages (None: nothing new, a keep-alive tick)."""
        ctx = ctxmod.receive(body, self.work_dir, opts.dockerfile)
        try:
            try:
                text = ctx.dockerfile.decode("utf-8")
            except UnicodeDecodeError:
                text = ctx.dockerfile.decode("latin-1")
            dockerfile = parse(text)
            run = _Build(self, ctx, dockerfile, opts)
            run.prepare()
        except BaseException:
            self.discard(ctx.base)
            raise
        return run.messages()

    # -- commit, diff, export --------------------------------------------------------------------------------------

    def container_fs(self, c) -> tuple[Path, list[Path], diffmod.Skip]:
        """Return a container's upper dir, its lower layer dirs (top first) and the runtime's mount points to skip."""
        spec = st.read_json(c.dir / "config.json") or {}
        overlay = (spec.get("annotations") or {}).get("dockweb.rootfs.overlay")
        if overlay:
            opts = dict(kv.split("=", 1) for kv in overlay.split(",") if "=" in kv)
            upper = Path(opts.get("upperdir", str(c.dir / "diff")))
            lowers = [Path(p) for p in opts.get("lowerdir", "").split(":") if p]
        else:
            upper = Path((spec.get("root") or {}).get("path") or c.dir / "rootfs")
            lowers = []
        points = [m.get("destination", "") for m in spec.get("mounts") or []]
        skip = diffmod.runtime_mount_skip(upper, points, diffmod.LayerView(lowers))
        return upper, lowers, skip

    def changes(self, ref: str) -> list[dict]:
        """Return GET /containers/{id}/changes: [{"Path", "Kind"}] (0 modified, 1 added, 2 deleted)."""
        c = self.containers.get(ref)
        upper, lowers, skip = self.container_fs(c)
        return [{"Path": p, "Kind": k} for k, p in diffmod.changes(upper, lowers, skip)]

    def export(self, ref: str) -> Iterator[bytes]:
        """Stream a container's merged filesystem as a tar (docker export); no mount is made."""
        c = self.containers.get(ref)
        upper, lowers, _skip = self.container_fs(c)
        attrs = {"image": c.image_ref, "name": c.name, **c.labels}
        r, w = os.pipe()

        def write() -> None:
            try:
                with os.fdopen(w, "wb") as out:
                    diffmod.write_merged([upper, *lowers], out)
            except (BrokenPipeError, SystemFailure, OSError) as e:
                if not isinstance(e, BrokenPipeError):
                    log.warning("exporting %s: %s", c.id, e)

        t = threading.Thread(target=write, name=f"export-{c.id[:12]}", daemon=True)
        t.start()
        self.events.publish("container", "export", c.id, attrs)

        def chunks() -> Iterator[bytes]:
            try:
                with os.fdopen(r, "rb") as f:
                    while True:
                        data = f.read(256 * 1024)
                        if not data:
                            break
                        yield data
            finally:
                t.join(timeout=5)

        return chunks()

    def commit(self, ref: str, repo: str = "", tag: str = "", comment: str = "", author: str = "",
               pause: bool = True, changes: list[str] = (), config: dict | None = None) -> str:
        """Make an image of a container's filesystem and config (POST /commit, docker commit); return its id."""
        c = self.containers.get(ref)
        target = reference.repo_tag(repo, tag) if repo else None
        paused = False
        if pause and c.state.status == "running":
            try:
                self.containers.pause(c.id)
                paused = True
            except EngineError as e:
                log.warning("pausing %s for commit: %s", c.id, e)
        try:
            parent = self.images.get(c.image_id)
            cfg = _container_image_config(c.config)
            if config:
                for k, v in config.items():
                    if v not in (None, "", [], {}) or k not in cfg:
                        cfg[k] = v
            cfg = ins.apply_changes(cfg, list(changes or []))
            created_by = " ".join((c.config.get("Cmd") or []))
            upper, lowers, skip = self.container_fs(c)
            with self.images.hold() as held:
                doc = copy.deepcopy(parent.config)
                doc.pop("container_config", None)
                doc["config"] = cfg
                diff_id = self._add_upper_layer(upper, lowers, skip, parent, held)
                history = {"created": st.rfc3339(time.time_ns()), "created_by": created_by}
                if author:
                    history["author"] = author
                    doc["author"] = author
                if comment:
                    history["comment"] = comment
                doc["comment"] = comment
                if diff_id is None:
                    history["empty_layer"] = True
                else:
                    doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
                doc["created"] = history["created"]
                doc["container"] = c.id
                doc.setdefault("history", []).append(history)
                iid = self.images.commit_image(_encode(doc), held, parent=parent.id)
                if target is not None:
                    self.images.set_tag(target, iid)
        finally:
            if paused:
                try:
                    self.containers.unpause(c.id)
                except EngineError as e:
                    log.warning("unpausing %s after commit: %s", c.id, e)
        self.events.publish("container", "commit", c.id,
                            {"comment": comment, "imageID": iid, "imageRef": target.familiar() if target else "",
                             "image": c.image_ref, "name": c.name, **c.labels})
        if target is not None:
            self.images.publish(iid, "tag", target.familiar())
        return iid

    def _add_upper_layer(self, upper: Path, lowers: list[Path], skip, parent: Image | None,
                         held: set[str], adopt: bool = False) -> str | None:
        """Store an upper dir as a layer on top of parent; return its diff id, or None when nothing changed.

        adopt: the upper dir is not needed afterwards (a build step's scratch, a build container about to be
        removed): it is moved into the store as the layer instead of being unpacked again from the tar.
        """
        spool = self.images.spool_dir()
        try:
            path = spool / "layer.tar"
            with open(path, "wb", buffering=1 << 20) as out:
                count = diffmod.write_layer(upper, out, lowers=lowers, skip=skip)
            if not count:
                return None
            parent_chain = self.images.layers(parent)[-1].chain_id if parent is not None and parent.diff_ids else ""
            if adopt:
                return self.images.adopt_layer(upper, path, parent_chain, held).diff_id
            with open(path, "rb") as f:
                layer = self.images.add_layer(f, parent_chain, held)
            return layer.diff_id
        finally:
            shutil.rmtree(spool, ignore_errors=True)

    def prune(self) -> dict:
        """Forget the build cache (POST /build/prune)."""
        return self.cache.prune()

    def df(self) -> list[dict]:
        """List the build cache for GET /system/df: one record per cached step, sized by the layer it added.

        The legacy builder's cache is made of intermediate images, so the space is also counted under Images
        (as with dockerd); InUse says a tagged image or a container still needs the step's image.
        """
        records = []
        for key, iid in self.cache.entries():
            try:
                image = self.images.get(iid)
            except NotFound:
                continue  # removed since: a miss, dropped at the next lookup
            last = (image.config.get("history") or [{}])[-1]
            layers = self.images.layers(image)
            size = layers[-1].size if layers and not last.get("empty_layer") else 0
            in_use = bool(image.repo_tags) or bool(self.images.children(iid))
            records.append({"ID": key.removeprefix("sha256:")[:25], "Parents": [image.parent] if image.parent else [],
                            "Type": "regular", "Description": last.get("created_by", ""), "InUse": in_use,
                            "Shared": bool(image.repo_tags), "Size": size, "CreatedAt": image.created,
                            "LastUsedAt": None, "UsageCount": 0})
        return records


def _encode(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


_IMAGE_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes", "WorkingDir",
                      "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell")


def _container_image_config(container_config: dict) -> dict:
    """Keep the image-level fields of a container's Config (docker commit)."""
    return {k: copy.deepcopy(container_config[k]) for k in _IMAGE_CONFIG_KEYS
            if container_config.get(k) not in (None, "", [], {})}


def _env_set(env: list[str], key: str, value: str) -> list[str]:
    out, done = [], False
    for e in env:
        if e.split("=", 1)[0] == key:
            if not done:
                out.append(f"{key}={value}")
                done = True
            continue
        out.append(e)
    if not done:
        out.append(f"{key}={value}")
    return out


def _env_map(env: list[str]) -> dict[str, str]:
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in env or [])


def _go_list(values: list[str]) -> str:
    """Format a string list as Go's %q does: ["a" "b"]."""
    return "[" + " ".join(_go_quote(v) for v in values) + "]"


def _go_duration(ns: int) -> str:
    if not ns:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1000), ("ns", 1)):
            if ns >= size:
                return f"{ns / size:g}{unit}"
    secs = ns / 1e9
    h, rem = divmod(int(secs), 3600)
    m, _ = divmod(rem, 60)
    s = secs - h * 3600 - m * 60
    out = f"{h}h" if h else ""
    if h or m:
        out += f"{m}m"
    return out + f"{s:g}s"


def _healthcheck_comment(hc: dict) -> str:
    """Approximate Go's %q of a *HealthConfig, which is what Docker's legacy builder writes in the history."""
    retries = int(hc.get("Retries") or 0)
    return ("HEALTHCHECK &{" + _go_list(hc.get("Test") or []) + " " +
            " ".join(_go_quote(_go_duration(int(hc.get(k) or 0)))
                     for k in ("Interval", "Timeout", "StartPeriod", "StartInterval")) +
            f" '\\x{retries:02x}'" + "}")


class _Build:
    """One run of POST /build: the stages to build, their state, what it created (to undo on failure)."""

    def __init__(self, builder: Builder, ctx: ctxmod.BuildContext, dockerfile: Dockerfile, opts: BuildOptions):
        self.b = builder
        self.ctx = ctx
        self.df = dockerfile
        self.opts = opts
        self.escape = dockerfile.escape
        self.created_images: list[str] = []
        self.kept_containers: list[str] = []
        self.stage_images: dict[int, str] = {}
        self.meta: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.step = 0
        self.total = 0
        self.stages: list[Stage] = []
        self._held: set[str] | None = None

    # -- planning --------------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Pick the stages to build (the target and what it needs), count the steps; errors are plain HTTP errors."""
        meta_env: dict[str, str] = {}
        for inst in self.df.meta_args:
            for name, default in ins.arg_decls(inst, meta_env, self.escape):
                value = self.opts.build_args.get(name)
                if value is None:
                    value = default
                else:
                    self.used_args.add(name)
                self.meta[name] = value
                if value is not None:
                    meta_env[name] = value
        self.meta_env = meta_env
        stages = self.df.stages
        if not stages:
            raise DockerfileError("file with no instructions", 0)
        target_index = len(stages) - 1
        if self.opts.target:
            found = [s for s in stages if s.name == self.opts.target.lower()]
            if not found:
                raise InvalidParameter(f"failed to reach build target {self.opts.target} in Dockerfile")
            target_index = found[0].index
        needed = self._needed(stages, target_index)
        self.stages = [s for s in stages if s.index in needed]
        self.target_index = target_index
        self.total = len(self.df.meta_args) + sum(1 + len(s.instructions) for s in self.stages)
        if self.opts.labels:
            self.total += 1

    def _stage_ref(self, name: str) -> Stage | None:
        """Return the earlier stage a FROM or COPY --from names (by name or index), or None for an image."""
        for s in self.df.stages:
            if s.name is not None and s.name == name.lower():
                return s
        if name.isdigit() and int(name) < len(self.df.stages):
            return self.df.stages[int(name)]
        return None

    def _needed(self, stages: list[Stage], target: int) -> set[int]:
        need = {target}
        todo = [target]
        while todo:
            s = stages[todo.pop()]
            refs = [expand(s.base, self.meta_env, self.escape)]
            for inst in s.instructions:
                if inst.keyword in ("COPY", "ADD") and inst.flags.get("from"):
                    refs.append(inst.flags["from"][-1])
            for ref in refs:
                dep = self._stage_ref(ref)
                if dep is not None and dep.index < s.index and dep.index not in need:
                    need.add(dep.index)
                    todo.append(dep.index)
        return need

    # -- running ---------------------------------------------------------------------------------------------------

    def messages(self) -> Iterator[dict | None]:
        """Run every step, yielding the output stream; on failure undo what this build made, then re-raise."""
        ok = False
        try:
            with self.b.images.hold() as held:
                self._held = held
                final = yield from self._run()
                ok = True
        finally:
            self._held = None
            if not ok:
                self._undo()
            self.b.discard(self.ctx.base)
        yield from self._finish(final)

    def _emit(self, text: str) -> dict | None:
        return None if self.opts.quiet else {"stream": text}

    def _say(self, text: str) -> Iterator[dict | None]:
        msg = self._emit(text)
        if msg is not None:
            yield msg

    def _step_line(self, original: str) -> Iterator[dict | None]:
        self.step += 1
        yield from self._say(f"Step {self.step}/{self.total} : {original}")
        yield from self._say("\n")

    def _run(self) -> Iterator[dict | None]:
        for inst in self.df.meta_args:
            yield from self._step_line(inst.original)
        state = None
        for stage in self.stages:
            state = yield from self._from(stage)
            for inst in stage.instructions:
                yield from self._step_line(inst.original)
                yield from self._dispatch(state, inst)
                yield from self._say(f" ---> {short_id(state.image_id)}\n")
            if stage.index == self.target_index and self.opts.labels:
                line = "LABEL " + " ".join(f"{json.dumps(k)}='{v}'" for k, v in self.opts.labels.items())
                yield from self._step_line(line)
                self._labels(state, list(self.opts.labels.items()))
                yield from self._commit_meta(state, "LABEL " + " ".join(f"{k}={v}" for k, v in
                                                                        self.opts.labels.items()))
                yield from self._say(f" ---> {short_id(state.image_id)}\n")
            if not state.image_id:
                # A FROM scratch with only metadata instructions, or none: the image still needs a record.
                yield from self._commit_meta(state, None)
            self.stage_images[stage.index] = state.image_id
        return state

    def _finish(self, state: _Stage) -> Iterator[dict]:
        iid = state.image_id
        unused = sorted(k for k in self.opts.build_args
                        if k not in self.used_args and k not in ins.PROXY_ARGS)
        if unused and not self.opts.quiet:
            yield {"stream": f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n"}
        yield {"aux": {"ID": iid}}
        if self.opts.quiet:
            yield {"stream": f"{iid}\n"}
        else:
            yield {"stream": f"Successfully built {short_id(iid)}\n"}
        for t in self.opts.tags:
            ref = self.b.images.tag(iid, *_split_tag(t))
            if not self.opts.quiet:
                yield {"stream": f"Successfully tagged {ref.familiar()}\n"}

    def _undo(self) -> None:
        """Remove the images this failed build created (newest first) and its kept containers."""
        for cid in self.kept_containers:
            try:
                self.b.containers.remove(cid, force=True, volumes=True)
            except EngineError as e:
                log.warning("removing build container %s: %s", cid, e)
        for iid in reversed(self.created_images):
            try:
                self.b.images.remove(iid, force=True, prune=False)
            except EngineError as e:
                log.warning("removing intermediate image %s of a failed build: %s", iid, e)
        self.b.cache.forget_images(set(self.created_images))

    # -- FROM ------------------------------------------------------------------------------------------------------

    def _from(self, stage: Stage) -> Iterator[dict | None]:
        yield from self._step_line(self._from_line(stage))
        base = expand(stage.base, self.meta_env, self.escape)
        dep = self._stage_ref(base)
        if base.lower() == "scratch":
            doc = {"architecture": host_architecture(), "os": "linux", "config": {},
                   "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            state = _Stage(stage, doc)
        else:
            if dep is not None and dep.index < stage.index:
                image = self.b.images.get(self.stage_images[dep.index])
            else:
                image = yield from self._image(base, pull=self.opts.pull)
            doc = copy.deepcopy(image.config)
            for k in ("container", "container_config", "comment", "author"):
                doc.pop(k, None)
            doc.setdefault("config", {})
            doc.setdefault("history", [])
            doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            state = _Stage(stage, doc, image.id)
        yield from self._say(f" ---> {short_id(state.image_id)}\n" if state.image_id else " ---> \n")
        triggers = list(state.cfg.get("OnBuild") or [])
        if triggers:
            state.cfg["OnBuild"] = None
            n = len(triggers)
            yield from self._say(f"# Executing {n} build trigger{'s' if n > 1 else ''}\n")
            for trigger in triggers:
                inst = parse(f"FROM scratch\n{trigger}\n").stages[0].instructions[0]
                yield from self._dispatch(state, inst)
        return state

    def _from_line(self, stage: Stage) -> str:
        name = f" AS {stage.name}" if stage.name else ""
        platform = f"--platform={stage.platform} " if stage.platform else ""
        return f"FROM {platform}{stage.base}{name}"

    def _image(self, ref: str, pull: bool = False) -> Iterator[dict | None]:
        """Return a local image, pulling it first with --pull or when missing (if a registry client exists)."""
        if not pull:
            try:
                return self.b.images.get(ref)
            except NoSuchImage:
                if self.b.registry is None:
                    raise
        if self.b.registry is None:
            return self.b.images.get(ref)
        messages: list[dict] = []
        image = self.b.registry.pull(ref, auth=self._auth_for(ref), progress=messages.append)
        for m in messages:
            if "status" in m and not self.opts.quiet:
                yield {"status": m["status"], **({"id": m["id"]} if m.get("id") else {})}
        return image

    def _auth_for(self, ref: str) -> dict | None:
        domain = reference.parse(ref).domain
        for key, auth in (self.opts.auth or {}).items():
            k = key.replace("https://", "").replace("http://", "").split("/")[0]
            if k == domain or (domain == "docker.io" and "index.docker.io" in k):
                return auth
        return None

    # -- environment and args --------------------------------------------------------------------------------------

    def _visible_args(self, state: _Stage) -> dict[str, str]:
        """The build args a step sees (declared ARGs and passed proxy args), minus those ENV already sets."""
        env_keys = set(_env_map(state.cfg.get("Env") or []))
        out: dict[str, str] = {}
        for name, value in state.args.items():
            if value is not None and name not in env_keys:
                out[name] = value
        for name in ins.PROXY_ARGS:
            value = self.opts.build_args.get(name)
            if name not in out and value is not None and name not in env_keys:
                out[name] = value
        return out

    def _env(self, state: _Stage) -> dict[str, str]:
        env = dict(self._visible_args(state))
        env.update(_env_map(state.cfg.get("Env") or []))
        return env

    # -- dispatch --------------------------------------------------------------------------------------------------

    def _dispatch(self, state: _Stage, inst: Instruction) -> Iterator[dict | None]:
        kw = inst.keyword
        env = self._env(state)
        cfg = state.cfg
        esc = self.escape
        if kw == "RUN":
            yield from self._run_step(state, inst)
            return
        if kw in ("COPY", "ADD"):
            yield from self._copy_step(state, inst, env)
            return
        if kw == "WORKDIR":
            path = ins.workdir(inst, env, esc, cfg.get("WorkingDir") or "")
            cfg["WorkingDir"] = path
            yield from self._fs_step(state, f"WORKDIR {path}", [Op("mkdir", path)], inst_key=f"WORKDIR {path}")
            return
        if kw == "ENV":
            pairs = ins.key_values(inst, env, esc)
            for k, v in pairs:
                cfg["Env"] = _env_set(list(cfg.get("Env") or []), k, v)
            comment = "ENV" + "".join(f" {k}={v}" for k, v in pairs)
        elif kw == "LABEL":
            pairs = ins.key_values(inst, env, esc)
            self._labels(state, pairs)
            comment = "LABEL" + "".join(f" {k}={v}" for k, v in pairs)
        elif kw == "ARG":
            parts = []
            for name, default in ins.arg_decls(inst, env, esc):
                value = self.opts.build_args.get(name)
                if value is not None:
                    self.used_args.add(name)
                elif default is not None:
                    value = default
                elif self.meta.get(name) is not None:
                    value = self.meta[name]
                if name in self.opts.build_args:
                    self.used_args.add(name)
                state.args[name] = value
                parts.append(name if default is None else f"{name}={default}")
            comment = "ARG " + " ".join(parts)
        elif kw == "CMD":
            cfg["Cmd"], _ = ins.exec_or_shell(inst, state.shell, env, esc)
            state.cmd_set = True
            comment = f"CMD {_go_list(cfg['Cmd'])}"
        elif kw == "ENTRYPOINT":
            argv, _ = ins.exec_or_shell(inst, state.shell, env, esc)
            cfg["Entrypoint"] = argv or None
            if not state.cmd_set:
                cfg["Cmd"] = None          # an ENTRYPOINT resets a CMD inherited from the base image
            comment = f"ENTRYPOINT {_go_list(argv)}"
        elif kw == "EXPOSE":
            ports = ins.expose(inst, env, esc)
            exposed = dict(cfg.get("ExposedPorts") or {})
            for p in ports:
                exposed[p] = {}
            cfg["ExposedPorts"] = exposed
            comment = "EXPOSE " + " ".join(ports)
        elif kw == "USER":
            cfg["User"] = ins.user(inst, env, esc)
            comment = f"USER {cfg['User']}"
        elif kw == "VOLUME":
            vols = ins.volumes(inst, env, esc)
            current = dict(cfg.get("Volumes") or {})
            for v in vols:
                current[v] = {}
            cfg["Volumes"] = current
            comment = "VOLUME [" + " ".join(vols) + "]"
        elif kw == "STOPSIGNAL":
            cfg["StopSignal"] = ins.stopsignal(inst, env, esc)
            comment = f"STOPSIGNAL {cfg['StopSignal']}"
        elif kw == "SHELL":
            cfg["Shell"] = ins.shell(inst)
            comment = "SHELL [" + " ".join(cfg["Shell"]) + "]"
        elif kw == "HEALTHCHECK":
            hc = ins.healthcheck(inst)
            if hc.get("Test") == ["NONE"]:
                cfg["Healthcheck"] = {"Test": ["NONE"]}
            else:
                cfg["Healthcheck"] = hc
            comment = _healthcheck_comment(cfg["Healthcheck"])
        elif kw == "ONBUILD":
            trigger = ins.onbuild(inst, esc)
            cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), trigger]
            comment = f"ONBUILD {trigger}"
        elif kw == "MAINTAINER":
            state.doc["author"] = inst.args[0] if inst.args else ""
            comment = f"MAINTAINER {state.doc['author']}"
        else:
            raise DockerfileError(f"unknown instruction: {kw}", inst.line)
        yield from self._commit_meta(state, comment)

    def _labels(self, state: _Stage, pairs: list[tuple[str, str]]) -> None:
        labels = dict(state.cfg.get("Labels") or {})
        labels.update(pairs)
        state.cfg["Labels"] = labels

    # -- committing --------------------------------------------------------------------------------------------------

    def _created_by_nop(self, state: _Stage, comment: str, single_space: bool = False) -> str:
        # Docker's withCmdComment appends "#(nop) " and the comment as two words (two spaces);
        # withCmdCommentString (WORKDIR, COPY, ADD) makes them one word (one space).
        sep = " " if single_space else "  "
        return " ".join(state.shell) + " #(nop)" + sep + comment

    def _cached(self, state: _Stage, key: str) -> Iterator[dict | None]:
        """Use the cached image for key if there is one; return whether it was used."""
        if self.opts.no_cache:
            return False
        iid = self.b.cache.lookup(key)
        if iid is None:
            return False
        try:
            image = self.b.images.get(iid)
        except NoSuchImage:
            return False
        # The cached image's layers must survive until this build has committed (a concurrent rmi).
        for layer in self.b.images.layers(image):
            self.b.images.has_layer(layer.chain_id, self._held)
        yield from self._say(" ---> Using cache\n")
        state.doc = copy.deepcopy(image.config)
        state.image_id = image.id
        return True

    def _commit_meta(self, state: _Stage, comment: str | None) -> Iterator[dict | None]:
        """Commit a metadata-only step (no layer), through the cache."""
        if comment is None:
            iid = self._commit(state, None, None)
            state.image_id = iid
            return
        created_by = self._created_by_nop(state, comment)
        key = cachemod.step_key(state.image_id, created_by, self._visible_args(state), config=state.doc.get("config"))
        hit = yield from self._cached(state, key)
        if hit:
            return
        iid = self._commit(state, created_by, None)
        self.b.cache.store(key, iid)

    def _commit(self, state: _Stage, created_by: str | None, diff_id: str | None) -> str:
        doc = state.doc
        now = st.rfc3339(time.time_ns())
        doc["created"] = now
        if created_by is not None:
            h: dict[str, Any] = {"created": now, "created_by": created_by}
            if diff_id is None:
                h["empty_layer"] = True
            doc.setdefault("history", []).append(h)
        if diff_id is not None:
            doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
        iid = self.b.images.commit_image(_encode(doc), self._held, parent=state.image_id)
        self.created_images.append(iid)
        state.image_id = iid
        return iid

    def _current_image(self, state: _Stage) -> Image | None:
        if not state.image_id:
            return None
        return self.b.images.get(state.image_id)

    # -- RUN ---------------------------------------------------------------------------------------------------------

    def _run_step(self, state: _Stage, inst: Instruction) -> Iterator[dict | None]:
        if ins.inline_files(inst):
            raise BuildError("RUN with a heredoc script starting with #! is not supported by this builder; "
                             "run it through the shell instead")
        env = self._env(state)
        argv, _ = ins.exec_or_shell(inst, state.shell, env, self.escape)
        args = self._visible_args(state)
        save = list(argv)
        if args:
            shown = sorted(f"{k}={v}" for k, v in args.items()
                           if k not in ins.PROXY_ARGS or k in state.args)
            save = [f"|{len(shown)}", *shown, *argv]
        created_by = " ".join(save)
        key = cachemod.step_key(state.image_id, created_by, args, config=state.doc.get("config"))
        hit = yield from self._cached(state, key)
        if hit:
            return
        if not state.image_id:
            self._commit(state, None, None)   # RUN on an empty scratch stage: the container needs an image
        run_env = list(state.cfg.get("Env") or []) + [f"{k}={v}" for k, v in args.items()]
        body = {
            "Image": state.image_id, "Cmd": argv, "Entrypoint": [""], "Env": run_env,
            "WorkingDir": state.cfg.get("WorkingDir") or "", "User": state.cfg.get("User") or "",
            "Healthcheck": {"Test": ["NONE"]}, "AttachStdout": True, "AttachStderr": True,
            "HostConfig": {"NetworkMode": self.opts.network_mode or "default", **self.opts.host_config},
        }
        mgr = self.b.containers
        cid, _warnings = mgr.create(body, None)
        remove = True
        try:
            yield from self._say(f" ---> Running in {short_id(cid)}\n")
            code = yield from self._run_container(cid)
            if code != 0:
                remove = self.opts.rm or self.opts.force_rm
                msg = f"The command '{' '.join(argv)}' returned a non-zero code: {code}"
                raise BuildError(msg, code)
            c = mgr.get(cid)
            upper, lowers, skip = self.b.container_fs(c)
            remove = self.opts.rm or self.opts.force_rm
            # A container about to be removed gives its upper dir to the layer; a kept one keeps it.
            diff_id = self.b._add_upper_layer(upper, lowers, skip, self._current_image(state), self._held,
                                              adopt=remove)
            if remove:
                yield from self._say(f"Removing intermediate container {short_id(cid)}\n")
            iid = self._commit(state, created_by, diff_id)
            self.b.cache.store(key, iid)
        except BaseException:
            if not remove:
                self.kept_containers.append(cid)
            raise
        finally:
            if remove:
                try:
                    mgr.remove(cid, force=True, volumes=True)
                except EngineError as e:
                    log.warning("removing build container %s: %s", cid, e)

    def _run_container(self, cid: str) -> Iterator[dict | None]:
        """Start a build container with its output on a socket pair; stream it; return the exit code."""
        mgr = self.b.containers
        ours, theirs = socket.socketpair()
        try:
            mgr.attach(cid, Attach(fd=theirs.detach(), stdin=False, stdout=True, stderr=True, framed=True))
            block = mgr.wait(cid, "next-exit")
            mgr.start(cid)
            buf = b""
            ours.setblocking(False)
            while True:
                ready, _, _ = select.select([ours], [], [], 1.0)
                if not ready:
                    yield None
                    continue
                try:
                    data = ours.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    break
                buf += data
                while len(buf) >= _FRAME.size:
                    _stream, size = _FRAME.unpack_from(buf)
                    if len(buf) < _FRAME.size + size:
                        break
                    payload = buf[_FRAME.size:_FRAME.size + size]
                    buf = buf[_FRAME.size + size:]
                    msg = self._emit(payload.decode("utf-8", "replace"))
                    if msg is not None:
                        yield msg
            result = block()
            return int(result.get("StatusCode") or 0)
        except GeneratorExit:
            # The client went away: stop the step's container now rather than at its end.
            try:
                mgr.kill(cid, "SIGKILL")
            except EngineError:
                pass
            raise
        finally:
            ours.close()

    # -- COPY, ADD, WORKDIR ------------------------------------------------------------------------------------------

    def _copy_step(self, state: _Stage, inst: Instruction, env: dict[str, str]) -> Iterator[dict | None]:
        spec = ins.copy_spec(inst, env, self.escape)
        cmd = inst.keyword
        chmod = None
        if spec.chmod:
            try:
                chmod = int(spec.chmod, 8)
            except ValueError:
                raise BuildError(f"{cmd} failed: invalid --chmod={spec.chmod}: must be an octal mode") from None
        workdir = state.cfg.get("WorkingDir") or "/"
        dest = spec.dest if spec.dest.startswith("/") else posixpath.join(workdir, spec.dest)
        if spec.dest.endswith("/") or spec.dest in (".", "") or spec.dest.endswith("/."):
            dest = dest.rstrip("/.") + "/" if dest.rstrip("/.") else "/"
        items: list[Item] = []
        hashes: list[str] = []
        downloads: list[Path] = []
        local: list[str] = []
        from_disk = False       # some context source must be read from the extracted files
        scratch = Path(tempfile.mkdtemp(prefix="step-", dir=self.b.work_dir))
        try:
            if spec.from_:
                items, from_key = yield from self._from_items(spec, cmd)
                hashes.append(from_key)
            else:
                for src in spec.sources:
                    if cmd == "ADD" and ctxmod.is_url(src):
                        path, name, mtime = ctxmod.download(src, scratch, self.b.config)
                        downloads.append(path)
                        item = Item(str(path), name, False, mode=0o600, mtime_ns=mtime)
                        items.append(item)
                        hashes.append("url:" + ctxmod.source_hash(ctxmod.Source(name, path, False)))
                    else:
                        local.append(src)
                if local:
                    sources = self.ctx.sources(local, cmd)
                    for s in sources:
                        extract = cmd == "ADD" and not s.is_dir and self.ctx.is_archive(s)
                        node = None if extract else self.ctx.spooled_node(s)
                        if node is None:
                            from_disk = True
                        items.append(Item(str(s.path), s.name, s.is_dir, extract=extract, node=node))
                    hashes.append(self.ctx.sources_hash(sources))
            for h in spec.heredocs:
                items.append(Item("", h.name, False, content=h.content.encode(), mode=0o644))
                hashes.append("heredoc:" + h.name + "\0" + h.content)
            if not items:
                raise BuildError(f"{cmd} failed: no source files were specified")
            if len(items) > 1 and not dest.endswith("/"):
                raise BuildError(f"When using {cmd} with more than one source file, the destination must be a "
                                 "directory and end with a /")
            src_hash = hashes[0] if len(hashes) == 1 else "multi:" + cachemod.step_key("", "", None, "\n".join(
                hashes)).split(":", 1)[1]
            chown_comment = f"--chown={spec.chown}" if spec.chown else ""
            comment = f"{cmd} {chown_comment}{src_hash} in {spec.dest} "
            op = Op("copy", dest, items=items, chown=spec.chown, chmod=chmod, cmd=cmd)
            key_text = f"{cmd} {spec.chown or ''} {spec.chmod or ''} {src_hash} {dest}"
            # The context's files are extracted only when the step runs: a cache hit never writes them.
            yield from self._fs_step(state, comment, [op], inst_key=key_text,
                                     prepare=self.ctx.materialize if from_disk else None, spool=self.ctx.spool)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _from_items(self, spec, cmd: str) -> Iterator[dict | None]:
        """Resolve COPY --from: a stage built here, else an image pulled as FROM pulls (shown, and with --pull)."""
        dep = self._stage_ref(spec.from_)
        if dep is not None and dep.index in self.stage_images:
            image = self.b.images.get(self.stage_images[dep.index])
        else:
            try:
                image = yield from self._image(spec.from_, pull=self.opts.pull)
            except NoSuchImage:
                raise BuildError(f"{cmd} failed: no stage or image found with that name: {spec.from_}") from None
        items = [Item(src, src, False, from_image=image.id) for src in spec.sources]
        return items, f"from:{image.id}:" + "\0".join(spec.sources)

    def _fs_step(self, state: _Stage, comment: str, ops: list[Op], inst_key: str,
                 prepare: Callable[[], None] | None = None, spool: Path | None = None) -> Iterator[dict | None]:
        """Apply file operations to the current image's filesystem in a private overlay; commit the diff."""
        created_by = self._created_by_nop(state, comment, single_space=True)
        key = cachemod.step_key(state.image_id, inst_key, self._visible_args(state), config=state.doc.get("config"))
        hit = yield from self._cached(state, key)
        if hit:
            return
        if prepare is not None:
            prepare()
        image = self._current_image(state)
        lowers = self.b.images.layer_dirs(image) if image is not None else []
        from_layers: dict[str, list[Path]] = {}
        for op in ops:
            for item in op.items:
                if item.from_image and item.from_image not in from_layers:
                    from_layers[item.from_image] = self.b.images.layer_dirs(self.b.images.get(item.from_image))
        scratch = Path(tempfile.mkdtemp(prefix="fs-", dir=self.b.work_dir))
        try:
            upper = apply_ops(scratch, lowers, ops, from_layers, spool)
            diff_id = self.b._add_upper_layer(upper, lowers, None, image, self._held, adopt=True)
        finally:
            self.b.discard(scratch)
        iid = self._commit(state, created_by, diff_id)
        self.b.cache.store(key, iid)
        yield from ()


def _split_tag(t: str) -> tuple[str, str]:
    ref = reference.parse(t)
    if ref.digest:
        raise InvalidParameter(f"invalid tag {t!r}: a tag cannot contain a digest")
    return ref.familiar_name, ref.tag or "latest"


# -- file operations of COPY, ADD and WORKDIR, in a private overlay ---------------------------------------------------
#
# A forked child unshares its mount namespace, mounts the current image's layers with a scratch upper dir (and the
# images COPY --from reads), opens the sources, then chroots into the merged rootfs: every destination path, and
# every symlink an image holds, resolves inside it, as Docker's copy into a container does. Nothing is mounted on
# the host and the mounts vanish with the child; the scratch upper dir is then the step's diff.

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Item:
    """One source of a COPY/ADD: a context file or tree, a download, an inline file, or a path in another image."""

    src: str                      # host path (context, download); for from_image: the path (maybe a glob) in it
    name: str                     # as the Dockerfile named it (its basename names a copied file)
    is_dir: bool
    content: bytes | None = None  # inline (heredoc) file content
    mode: int | None = None       # forced mode (downloads 0600, inline files 0644)
    mtime_ns: int | None = None
    extract: bool = False         # ADD of a local archive: unpack into the destination
    from_image: str = ""          # COPY --from: the image id whose filesystem holds src
    node: Any = None              # a context source read from the spooled context tar (its index node)


@dataclass
class Op:
    """A filesystem operation: "copy" items to dest, or "mkdir" dest (WORKDIR)."""

    kind: str
    dest: str
    items: list[Item] = field(default_factory=list)
    chown: str | None = None
    chmod: int | None = None
    cmd: str = "COPY"


def is_archive(path: Path) -> bool:
    """Tell whether a local ADD source is a tar archive (maybe compressed) that ADD unpacks."""
    return ctxmod._is_archive_file(path)


def apply_ops(scratch: Path, lowers: list[Path], ops: list[Op], from_layers: dict[str, list[Path]],
              spool: Path | None = None) -> Path:
    """Run ops against lowers + a new upper dir under scratch in a forked child; return the upper dir.

    spool: the received context tar, which items with an index node are read from (opened before the chroot).
    """
    from engine.runtime import mounts as rtmounts
    from engine.runtime import sys as linux
    from engine.volumes.fsaccess import fork_worker, raise_report

    upper, work, merged, empty = (scratch / n for n in ("upper", "work", "merged", "empty"))
    for d in (upper, work, merged, empty):
        d.mkdir()
    os.chmod(upper, 0o755)
    froms: dict[str, Path] = {}
    for i, iid in enumerate(from_layers):
        base = scratch / f"from{i}"
        for n in ("upper", "work", "merged"):
            (base / n).mkdir(parents=True)
        froms[iid] = base

    def overlay(layers: list[Path], base: Path, up: Path, wk: Path) -> None:
        lower = ":".join(str(p) for p in layers) or str(empty)
        rtmounts.mount_overlay(str(base), f"lowerdir={lower},upperdir={up},workdir={wk}")

    def body(reporter, _fd) -> None:
        linux.unshare(linux.CLONE_NEWNS)
        # Private first: nothing mounted below may propagate to the host's namespace.
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        overlay(lowers, merged, upper, work)
        for iid, base in froms.items():
            overlay(from_layers[iid], base / "merged", base / "upper", base / "work")
        opened = [[_open_item(op, item, froms) for item in op.items] for op in ops]
        spool_fd = -1
        if spool is not None and any(item.node is not None for op in ops for item in op.items):
            spool_fd = os.open(spool, _OPEN_FLAGS)
        os.chroot(merged)
        os.chdir("/")
        for op, items in zip(ops, opened):
            if op.kind == "mkdir":
                _mkdirs(op.dest, 0, 0)
            else:
                uid, gid = _chown_ids(op.chown, op.cmd) if op.chown else (0, 0)
                _copy(op, [i for group in items for i in group], uid, gid, spool_fd)
        reporter.send({"ok": True})

    worker = fork_worker(None, body)
    try:
        raise_report(worker.report())
    finally:
        worker.wait()
    return upper


def _open_item(op: Op, item: Item, froms: dict[str, Path]) -> list[tuple[Item, int | None, os.stat_result | None]]:
    """Open a source before the chroot hides the host: [(item, fd, stat)], several when a --from glob matches."""
    if item.content is not None or item.node is not None:
        return [(item, None, None)]
    if not item.from_image:
        fd = os.open(item.src, _OPEN_FLAGS)
        return [(item, fd, os.fstat(fd))]
    from engine.runtime.mounts import secure_join
    root = str(froms[item.from_image] / "merged")
    rel = item.src.lstrip("/")
    names = [rel]
    if any(c in rel for c in "*?["):
        names = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for n in sorted(dirnames + filenames):
                cand = n if rel_dir == "." else f"{rel_dir}/{n}"
                if ctxmod._go_match(rel, cand):
                    names.append(cand)
        if not names:
            raise ctxmod.ContextError(f"{op.cmd} failed: no source files were specified")
    out = []
    for name in names:
        path = secure_join(root, name)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            raise ctxmod.ContextError(f"{op.cmd} failed: stat {item.src}: file does not exist") from None
        except OSError as e:
            raise ctxmod.ContextError(f"{op.cmd} failed: {item.src}: {e.strerror}") from None
        st_ = os.fstat(fd)
        out.append((Item(path, name, stat.S_ISDIR(st_.st_mode), from_image=item.from_image), fd, st_))
    return out


def _copy(op: Op, items: list[tuple[Item, int | None, os.stat_result | None]], uid: int, gid: int,
          spool_fd: int = -1) -> None:
    dest = op.dest
    as_dir = dest.endswith("/") or len(items) > 1
    for item, fd, st_ in items:
        if item.node is not None:
            _copy_spooled(op, item, spool_fd, as_dir, uid, gid)
            continue
        if item.extract and fd is not None:
            from engine.images.layers import decompressed
            _mkdirs(dest, uid, gid)
            with os.fdopen(fd, "rb") as f:
                tarsafe.extract(decompressed(f), Path(dest), tarsafe.ExtractLimits(keep_setid=True))  # type: ignore
            continue
        if st_ is not None and stat.S_ISDIR(st_.st_mode):
            _mkdirs(dest, uid, gid)
            _copy_tree(fd, dest, uid, gid, op.chmod)
            os.close(fd)
            continue
        target = dest
        if as_dir or os.path.isdir(dest):
            target = posixpath.join(dest, posixpath.basename(item.name.rstrip("/")))
        _mkdirs(posixpath.dirname(target) or "/", uid, gid)
        mode = op.chmod if op.chmod is not None else item.mode if item.mode is not None else (
            stat.S_IMODE(st_.st_mode) if st_ is not None else 0o644)
        mtime = item.mtime_ns if item.mtime_ns is not None else (st_.st_mtime_ns if st_ is not None else None)
        _write_file(target, fd, item.content, mode, uid, gid, mtime)


def _copy_spooled(op: Op, item: Item, spool_fd: int, as_dir: bool, uid: int, gid: int) -> None:
    """Copy a context source from the spooled tar: what _copy does for the same source extracted on disk."""
    node = item.node
    if stat.S_ISDIR(node.mode):
        _mkdirs(op.dest, uid, gid)
        _copy_spooled_tree(spool_fd, node, op.dest, uid, gid, op.chmod)
        return
    target = op.dest
    if as_dir or os.path.isdir(op.dest):
        target = posixpath.join(op.dest, posixpath.basename(item.name.rstrip("/")))
    _mkdirs(posixpath.dirname(target) or "/", uid, gid)
    mode = op.chmod if op.chmod is not None else stat.S_IMODE(node.mode)
    _write_spooled(target, spool_fd, node, mode, uid, gid)


def _write_spooled(target: str, spool_fd: int, node: Any, mode: int, uid: int, gid: int) -> None:
    _clear(target, False)
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        offset, left = node.offset, node.size
        while left:
            chunk = os.pread(spool_fd, min(left, 1 << 20), offset)
            if not chunk:
                raise BuildError(f"the build context ended early writing {target}")
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]
            offset += len(chunk)
            left -= len(chunk)
        os.fchown(out, uid, gid)
        os.fchmod(out, mode)             # after chown, which clears set-id bits
        os.utime(out, ns=(node.mtime_ns, node.mtime_ns))
    finally:
        os.close(out)


def _copy_spooled_tree(spool_fd: int, node: Any, dest: str, uid: int, gid: int, chmod: int | None) -> None:
    """_copy_tree over a context index directory: same order, same modes, owners and times."""
    children = node.children or {}
    for name in sorted(children):
        child = children[name]
        target = posixpath.join(dest, name)
        mode = chmod if chmod is not None else stat.S_IMODE(child.mode)
        if stat.S_ISDIR(child.mode):
            _clear(target, True)
            if not os.path.isdir(target):
                os.mkdir(target, 0o700)
            _copy_spooled_tree(spool_fd, child, target, uid, gid, chmod)
            os.chown(target, uid, gid)
            os.chmod(target, mode)
            os.utime(target, ns=(child.mtime_ns, child.mtime_ns))
        elif stat.S_ISREG(child.mode):
            _write_spooled(target, spool_fd, child, mode, uid, gid)
        elif stat.S_ISLNK(child.mode):
            _clear(target, False)
            os.symlink(child.target, target)
            os.chown(target, uid, gid, follow_symlinks=False)
            os.utime(target, ns=(child.mtime_ns, child.mtime_ns), follow_symlinks=False)
        elif stat.S_ISFIFO(child.mode):
            _clear(target, False)
            os.mkfifo(target, 0o600)
            os.chown(target, uid, gid)
            os.chmod(target, mode)
        # Devices and sockets in a build context are not copied.


def _mkdirs(path: str, uid: int, gid: int) -> None:
    """Create path and its missing parents (0755, owned uid:gid); existing directories keep their attributes."""
    cur = "/"
    for part in [p for p in path.split("/") if p and p != "."]:
        cur = posixpath.join(cur, part)
        if os.path.isdir(cur):
            continue
        if os.path.lexists(cur) and not os.path.islink(cur):
            raise BuildError(f"mkdir {cur}: not a directory")
        os.mkdir(cur, 0o755)
        os.chown(cur, uid, gid)


def _clear(target: str, for_dir: bool) -> None:
    """Remove what is in the way of a new entry (a directory stays for a directory)."""
    try:
        st_ = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st_.st_mode):
        if for_dir:
            return
        raise BuildError(f"cannot overwrite directory {target} with a non-directory")
    os.unlink(target)


def _write_file(target: str, src_fd: int | None, content: bytes | None, mode: int, uid: int, gid: int,
                mtime_ns: int | None) -> None:
    _clear(target, False)
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if content is not None:
            os.write(out, content)
        elif src_fd is not None:
            while True:
                chunk = os.read(src_fd, 1 << 20)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
        os.fchown(out, uid, gid)
        os.fchmod(out, mode)             # after chown, which clears set-id bits
        if mtime_ns is not None:
            os.utime(out, ns=(mtime_ns, mtime_ns))
    finally:
        os.close(out)
        if src_fd is not None:
            os.close(src_fd)


def _copy_tree(src_fd: int, dest: str, uid: int, gid: int, chmod: int | None) -> None:
    """Copy a directory's content (not following its symlinks) into dest, owned uid:gid."""
    for name in sorted(os.listdir(src_fd)):
        st_ = os.lstat(name, dir_fd=src_fd)
        target = posixpath.join(dest, name)
        mode = chmod if chmod is not None else stat.S_IMODE(st_.st_mode)
        if stat.S_ISDIR(st_.st_mode):
            _clear(target, True)
            created = not os.path.isdir(target)
            if created:
                os.mkdir(target, 0o700)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _OPEN_FLAGS, dir_fd=src_fd)
            try:
                _copy_tree(sub, target, uid, gid, chmod)
            finally:
                os.close(sub)
            os.chown(target, uid, gid)
            os.chmod(target, mode)
            os.utime(target, ns=(st_.st_mtime_ns, st_.st_mtime_ns))
        elif stat.S_ISREG(st_.st_mode):
            fd = os.open(name, _OPEN_FLAGS, dir_fd=src_fd)
            _write_file(target, fd, None, mode, uid, gid, st_.st_mtime_ns)
        elif stat.S_ISLNK(st_.st_mode):
            _clear(target, False)
            os.symlink(os.readlink(name, dir_fd=src_fd), target)
            os.chown(target, uid, gid, follow_symlinks=False)
            os.utime(target, ns=(st_.st_mtime_ns, st_.st_mtime_ns), follow_symlinks=False)
        elif stat.S_ISFIFO(st_.st_mode):
            _clear(target, False)
            os.mkfifo(target, 0o600)
            os.chown(target, uid, gid)
            os.chmod(target, mode)
        # Devices and sockets in a build context are not copied.


def _id_from(path: str, name: str, field_: int) -> int | None:
    try:
        with open(path, errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) > field_ and parts[0] == name:
                    return int(parts[field_])
    except (OSError, ValueError):
        return None
    return None


def _chown_ids(chown: str, cmd: str) -> tuple[int, int]:
    """Resolve --chown=user[:group] against the image's /etc/passwd and /etc/group (we are chrooted in it)."""
    parts = chown.split(":")
    if len(parts) > 2:
        raise BuildError(f"{cmd} failed: invalid chown string format: {chown}")
    user, group = parts[0], parts[1] if len(parts) == 2 else ""
    if user.isdigit():
        uid = int(user)
    else:
        found = _id_from("/etc/passwd", user, 2)
        if found is None:
            raise BuildError(f"{cmd} failed: unable to convert uid/gid chown string to host mapping: "
                             f"can't find uid for user {user}: no such user: {user}")
        uid = found
    if not group:
        # No group given: a numeric user is also the group; a named user's primary group from /etc/passwd.
        gid = uid if user.isdigit() else (_id_from("/etc/passwd", user, 3) or 0)
    elif group.isdigit():
        gid = int(group)
    else:
        found = _id_from("/etc/group", group, 2)
        if found is None:
            raise BuildError(f"{cmd} failed: unable to convert uid/gid chown string to host mapping: "
                             f"can't find gid for group {group}: no such group: {group}")
        gid = found
    return uid, gid
