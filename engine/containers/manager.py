"""Container lifecycle verbs; each one: lock, refresh, check, act, save, publish."""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import signal as sig
import threading
import time
from pathlib import Path
from typing import Callable

from engine import state as st
from engine.config import EngineConfig
from engine.containers import spec as specmod
from engine.containers.model import Container, ContainerState, is_supervisor, pid_alive
from engine.containers.signals import parse_signal
from engine.errors import (
    Conflict, ContainerStartError, InvalidParameter, NoSuchContainer, NotFound, NotModified, SystemFailure,
)
from engine.events import EventLog
from engine.runtime import control, seccomp
from engine.runtime.cgroups import Cgroup
from engine.runtime.launcher import Attach, Launcher

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
# Docker doubles the delay between restarts from 100 ms and resets it after 10 s of uptime.
RESTART_BASE_DELAY = 0.1
RESTART_MAX_DELAY = 60.0


class ContainerManager:
    """Own every container of one engine root: create, start, stop, remove, and follow their supervisors."""

    def __init__(self, config: EngineConfig, events: EventLog, images, launcher: Launcher, volumes=None,
                 networks=None) -> None:
        self.config = config
        self.events = events
        self.images = images
        self.launcher = launcher
        self.volumes = volumes          # engine.volumes.store.VolumeStore; None: volume mounts are refused
        self.networks = networks        # engine.network.manager.NetworkManager; None: every netns is empty
        if networks is not None:
            networks.containers = self
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._containers: dict[str, Container] = {}
        self._pending_attaches: dict[str, list[Attach]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._watch_r, self._watch_w = os.pipe()
        self._pidfds: dict[int, str] = {}          # pidfd -> container id
        self._restart_delay: dict[str, float] = {}
        self._closing = False
        self.execs = ExecRegistry()
        from engine.containers.health import HealthMonitor
        self.health = HealthMonitor(events, self._attrs)    # HEALTHCHECK probes of running containers
        self._monitor = threading.Thread(target=self._monitor_loop, name="supervisor-monitor", daemon=True)

    # ---------------------------------------------------------------- startup

    def load(self) -> None:
        """Load every container record, adopt live supervisors, record exits that happened while down."""
        self.config.containers_dir.mkdir(parents=True, exist_ok=True)
        for trash in self.config.tmp_dir.glob("rm-*"):
            shutil.rmtree(trash, ignore_errors=True)   # removals a crash interrupted
        for d in sorted(self.config.containers_dir.iterdir()):
            c = Container.load(d) if d.is_dir() else None
            if c is None:
                if d.is_dir() and not (d / "state.json").exists():
                    shutil.rmtree(d, ignore_errors=True)   # a create that crashed half-way
                continue
            self._containers[c.id] = c
            self._locks[c.id] = threading.Lock()
        self._monitor.start()
        for c in list(self._containers.values()):
            self._adopt(c)
        self._remove_stale_cgroups()

    def _adopt(self, c: Container) -> None:
        sup = st.read_json(c.dir / "supervisor.json") or {}
        exit_doc = st.read_json(c.dir / "exit.json")
        if c.state.status == "removing":
            self._finish_remove(c, volumes=False)
            return
        if sup and exit_doc is None and is_supervisor(sup.get("pid", 0)):
            c.state.supervisor_pid = sup["pid"]
            c.state.pid = sup.get("init_pid", 0)
            if c.state.status not in ("running", "paused"):
                c.state.status = "running"
            cg = self._cgroup(c)
            c.state.status = "paused" if cg.exists() and cg.is_frozen() else "running"
            c.save()
            if self.networks is not None:
                try:
                    self.networks.adopt(c)      # its published ports and embedded DNS come back
                except Exception:
                    log.exception("restoring the networking of %s", c.id)
            self._watch(c)
            if c.state.status == "running":
                self._health_hook("start", c, resume=True)   # probing resumes where it was
            return
        if c.state.status in ("running", "paused", "restarting"):
            # It ended while the daemon was down: report it now and apply the restart policy.
            self._record_exit(c, exit_doc)
            self._after_exit(c)

    def _remove_stale_cgroups(self) -> None:
        try:
            from engine.runtime.cgroups import list_children
        except ImportError:
            return
        live = {self._cgroup_path(c) for c in self._containers.values() if c.is_running}
        for path in list_children(self.config.cgroup_parent):
            if path not in live:
                try:
                    Cgroup.open(path).remove()
                except Exception as e:   # a stale cgroup we cannot remove is only logged
                    log.warning("removing stale cgroup %s: %s", path, e)

    def close(self) -> None:
        self._closing = True
        os.write(self._watch_w, b"x")

    # ---------------------------------------------------------------- lookup

    def get(self, ref: str) -> Container:
        """Resolve a full id, a name (with or without "/"), or a unique id prefix."""
        ref = ref or ""
        with self._lock:
            if ref in self._containers:
                return self._containers[ref]
            name = ref[1:] if ref.startswith("/") else ref
            for c in self._containers.values():
                if c.name == name:
                    return c
            if ref and re.fullmatch(r"[0-9a-f]+", ref):
                found = [c for c in self._containers.values() if c.id.startswith(ref)]
                if len(found) == 1:
                    return found[0]
                if len(found) > 1:
                    raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NoSuchContainer(ref)

    def all(self) -> list[Container]:
        with self._lock:
            return list(self._containers.values())

    def image_users(self, image_id: str) -> list[tuple[str, bool]]:
        """List (container id, running) of containers made from an image."""
        return [(c.id, c.is_running) for c in self.all() if c.image_id == image_id]

    def counts(self) -> dict:
        cs = self.all()
        running = sum(1 for c in cs if c.state.status == "running")
        paused = sum(1 for c in cs if c.state.status == "paused")
        return {"total": len(cs), "running": running, "paused": paused, "stopped": len(cs) - running - paused}

    def _lock_for(self, c: Container) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(c.id, threading.Lock())

    # ---------------------------------------------------------------- create

    def create(self, body: dict, name: str | None) -> tuple[str, list[str]]:
        """Validate a create request, prepare the container directory, return (id, warnings)."""
        if name is not None and name != "" and not NAME_RE.match(name):
            raise InvalidParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        opts = specmod.parse_create_body(body, name or None)
        image = self.images.get(opts.image)
        proc = specmod.merge_image_config(opts, image.config)
        cid = st.new_id()
        cnet = None
        if self.networks is not None:
            # Before the name is taken: an unknown network is a 404 with nothing to undo.
            cnet = self.networks.plan(cid, opts.network_mode, body.get("NetworkingConfig"))
        with self._lock:
            if name:
                name = name.lstrip("/")
                for other in self._containers.values():
                    if other.name == name:
                        raise Conflict(
                            f'Conflict. The container name "/{name}" is already in use by container "{other.id}". '
                            "You have to remove (or rename) that container to be able to reuse that name.")
            else:
                name = self._generate_name()
            bundle = self.config.container_dir(cid)
            # Reserve the name before the slow part, so two concurrent creates cannot both take it.
            placeholder = Container(cid, name, 0, opts.image, image.id, "", [], {}, {}, str(bundle),
                                    ContainerState(status="removing"))
            self._containers[cid] = placeholder
            self._locks[cid] = threading.Lock()
        try:
            c = self._prepare(cid, name, opts, proc, image, bundle, cnet)
        except BaseException:
            with self._lock:
                self._containers.pop(cid, None)
                self._locks.pop(cid, None)
            shutil.rmtree(bundle, ignore_errors=True)
            raise
        with self._lock:
            self._containers[cid] = c
        self.events.publish("container", "create", cid, self._attrs(c))
        return cid, list(proc.warnings) if hasattr(proc, "warnings") else []

    def _prepare(self, cid, name, opts, proc, image, bundle: Path, cnet=None) -> Container:
        bundle.mkdir(parents=True)
        for sub in ("diff", "work", "rootfs", "execs"):
            (bundle / sub).mkdir()
        lowers = self.images.layer_dirs(image)
        overlay = None
        if lowers:
            overlay = "lowerdir={},upperdir={},workdir={}".format(
                ":".join(str(p) for p in lowers), bundle / "diff", bundle / "work")
        rootfs = {"path": str(bundle / "rootfs"), "overlay": overlay}
        mounts, created = self._resolve_mounts(opts, proc)
        try:
            self._copy_up(bundle, rootfs, lowers, mounts)
            points = [m.to_point() for m in mounts] if mounts is not None else None
            # Bridge networks: the init joins the namespace the network manager makes and plugs at each start.
            netns_path = str(self.networks.sandbox_path(cid)) if cnet is not None and cnet.own_namespace else None
            spec = specmod.build_spec(cid, opts, proc, bundle, rootfs, f"{self.config.cgroup_parent}/{cid}",
                                      os.cpu_count() or 1, self._host_init(), mounts=points, netns_path=netns_path)
        except BaseException:
            if created:
                from engine.volumes.mounts import discard_created
                discard_created(self.volumes, created)
            raise
        hostname = spec.get("hostname", cid[:12])
        (bundle / "hostname").write_text(specmod.hostname_file(hostname))
        (bundle / "hosts").write_text(specmod.hosts_file(hostname, opts.extra_hosts))
        try:
            host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            host_resolv = ""
        (bundle / "resolv.conf").write_text(
            specmod.resolv_conf(host_resolv, opts.dns, opts.dns_search, opts.dns_options))
        st.write_json(bundle / "config.json", spec, fsync=False)
        runtime = specmod.build_runtime_json(cid, opts, str(bundle / "container-json.log"),
                                             self.config.log_max_size, self.config.log_max_files)
        runtime.update(control.start_options(spec))   # so the supervisor never parses config.json
        self._link_seccomp_program(bundle, spec)
        st.write_json(bundle / "runtime.json", runtime, fsync=False)
        if cnet is not None:
            self.networks.created(cid, bundle, cnet)
        c = Container(
            id=cid, name=name, created_ns=time.time_ns(), image_ref=opts.image, image_id=image.id,
            path=proc.args[0] if proc.args else "", args=list(proc.args[1:]),
            config=specmod.inspect_config(opts, proc, hostname), host_config=specmod.inspect_host_config(opts),
            bundle=str(bundle), mounts=[m.record() for m in mounts or ()])
        c.save()
        return c

    # ---------------------------------------------------------------- volumes and mounts

    def _resolve_mounts(self, opts, proc):
        """Resolve the mount points (creating the volumes they name); (None, []) without a volume store."""
        if self.volumes is None:
            return None, []
        from engine.volumes.mounts import resolve
        res = resolve(opts, proc, self.volumes, self.container_mounts)
        return res.mounts, res.created

    def _copy_up(self, bundle: Path, rootfs: dict, lowers: list[Path], mounts) -> None:
        """Copy the image's content under each copy-data volume mount into the volume when the volume is empty."""
        from engine.volumes import fsaccess
        items = []
        for m in mounts or ():
            if m.type != "volume" or not m.copy_data:
                continue
            if not fsaccess.may_exist_in_layers(lowers, m.destination):
                continue
            try:
                if os.listdir(m.source):
                    continue
            except OSError:
                continue
            items.append((m.destination, m.source))
        if items:
            target = fsaccess.FsTarget(bundle, 0, rootfs.get("overlay"), rootfs["path"])
            fsaccess.copy_up(target, items)

    def container_mounts(self, ref: str) -> list:
        """Return a container's mount points (ContainerMount), for volumes-from and docker cp."""
        from engine.volumes.mounts import ContainerMount
        c = self.get(ref)
        return [ContainerMount.from_record(d) for d in c.mounts]

    def volume_users(self, name: str) -> list[str]:
        """List the ids of the containers (running or not) whose mounts use volume name."""
        return [cid for cid, _running in self.containers_using_volume(name)]

    def containers_using_volume(self, name: str) -> list[tuple[str, bool]]:
        """List (container id, running) of the containers whose mounts use volume name."""
        out = []
        for c in self.all():
            if any(m.get("type") == "volume" and m.get("name") == name for m in c.mounts):
                out.append((c.id, c.is_running))
        return out

    def _mount_volumes(self, c: Container) -> None:
        """Before a start: mount driver-option volumes (tmpfs, bind) that are not mounted, and say so in events."""
        if self.volumes is None:
            return
        for m in c.mounts:
            if m.get("type") != "volume":
                continue
            try:
                v = self.volumes.get(m["name"])
            except NotFound:
                raise Conflict(f"cannot start container {c.id}: its volume {m['name']} was removed") from None
            self.volumes.mount_source(v)

    def _volume_events(self, c: Container, action: str) -> None:
        for m in c.mounts:
            if m.get("type") != "volume":
                continue
            attrs = {"container": c.id, "driver": m.get("driver") or "local"}
            if action == "mount":
                attrs.update({"destination": m["destination"], "propagation": m.get("propagation") or "",
                              "read/write": "true" if m.get("rw", True) else "false"})
            self.events.publish("volume", action, m["name"], attrs)

    def _remove_anonymous_volumes(self, c: Container) -> None:
        """docker rm -v: remove the container's anonymous volumes no other container uses."""
        if self.volumes is None:
            return
        for m in c.mounts:
            if m.get("type") != "volume" or not m.get("anonymous"):
                continue
            try:
                self.volumes.remove(m["name"], in_use=self.volume_users)
            except (NotFound, Conflict):
                pass     # gone already, or still used (volumes-from): dockerd leaves it too
            except Exception as e:
                log.warning("removing volume %s of container %s: %s", m["name"], c.id, e)

    def _link_seccomp_program(self, bundle: Path, spec: dict) -> None:
        """Give the bundle the compiled seccomp program when an earlier start already compiled this profile.

        Otherwise the container's init compiles it (and fills the cache for the next create): the daemon does
        not load libseccomp itself.
        """
        profile = (spec.get("linux") or {}).get("seccomp")
        if not profile:
            return
        cached = self.config.run_dir / "seccomp" / f"{seccomp.cache_key(profile)}.bpf"
        try:
            os.link(cached, bundle / control.SECCOMP_BPF)
        except FileNotFoundError:
            pass
        except OSError:
            shutil.copyfile(cached, bundle / control.SECCOMP_BPF)

    def _host_init(self) -> str | None:
        for p in ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/bin/tini"):
            if os.path.exists(p):
                return p
        return None

    def _generate_name(self) -> str:
        from engine.containers.names import random_name
        taken = {c.name for c in self._containers.values()}
        for _ in range(50):
            n = random_name()
            if n not in taken:
                return n
        return f"{random_name()}_{st.new_id()[:6]}"

    # ---------------------------------------------------------------- start

    def start(self, ref: str) -> None:
        """Start a created or exited container; NotModified if it already runs."""
        c = self.get(ref)
        with self._lock_for(c):
            self._start_locked(c)

    def _start_locked(self, c: Container, restarting: bool = False) -> None:
        if c.state.status in ("running", "paused"):
            raise NotModified()
        if c.state.status in ("removing", "dead"):
            raise Conflict(f"cannot start container {c.id}: container is marked for removal")
        for f in ("exit.json", "supervisor.json"):
            try:
                (c.dir / f).unlink()
            except FileNotFoundError:
                pass
        with self._lock:
            attaches = self._pending_attaches.pop(c.id, [])
        try:
            self._mount_volumes(c)
            if self.networks is not None:
                try:
                    # Plugged before the process runs: it may use the network from its first instruction.
                    self.networks.start(c)
                except Exception as e:
                    self._start_failed(c, getattr(e, "message", str(e)), 128)
                    raise
            try:
                started = self.launcher.start(c.dir, attaches)
            except BaseException:
                if self.networks is not None:
                    self.networks.stop(c)
                raise
        except ContainerStartError as e:
            self._start_failed(c, e.message, 127)
            raise
        finally:
            for a in attaches:
                _close_fd(a.fd)
        s = c.state
        s.status = "running"
        s.pid = started.init_pid
        s.supervisor_pid = started.supervisor_pid
        s.started_ns = time.time_ns()
        s.exit_code = 0
        s.oom_killed = False
        s.error = ""
        s.manually_stopped = False
        s.ever_started = True
        c.save()
        self._watch(c)
        self._health_hook("start", c)
        self._volume_events(c, "mount")
        self.events.publish("container", "start", c.id, self._attrs(c))
        self._notify()

    def _start_failed(self, c: Container, message: str, exit_code: int) -> None:
        c.state.status = "exited" if c.state.ever_started else "created"
        c.state.exit_code = exit_code
        c.state.error = message
        if c.state.ever_started:
            c.state.finished_ns = time.time_ns()
        c.save()
        self._notify()
        if c.host_config.get("AutoRemove"):
            # `docker run --rm` waits for condition=removed even when start fails.
            threading.Thread(target=self._auto_remove, args=(c.id,), daemon=True).start()

    # ---------------------------------------------------------------- monitor

    def _watch(self, c: Container) -> None:
        try:
            fd = os.pidfd_open(c.state.supervisor_pid)
        except ProcessLookupError:
            # Already gone (a container like `true` can finish first). Not inline: the caller may hold this
            # container's lock (start), which _on_supervisor_exit takes too; a thread waits for it instead.
            threading.Thread(target=self._on_supervisor_exit, args=(c.id,), daemon=True).start()
            return
        with self._lock:
            self._pidfds[fd] = c.id
        os.write(self._watch_w, b"w")

    def _monitor_loop(self) -> None:
        poller = select.poll()
        poller.register(self._watch_r, select.POLLIN)
        registered: set[int] = set()
        while not self._closing:
            with self._lock:
                for fd in self._pidfds:
                    if fd not in registered:
                        poller.register(fd, select.POLLIN)
                        registered.add(fd)
            for fd, _ in poller.poll():
                if fd == self._watch_r:
                    os.read(self._watch_r, 4096)
                    continue
                poller.unregister(fd)
                registered.discard(fd)
                with self._lock:
                    cid = self._pidfds.pop(fd, None)
                os.close(fd)
                if cid:
                    try:
                        self._on_supervisor_exit(cid)
                    except Exception:
                        log.exception("handling the exit of container %s", cid)

    def _on_supervisor_exit(self, cid: str) -> None:
        with self._lock:
            c = self._containers.get(cid)
        if c is None:
            return
        with self._lock_for(c):
            if c.state.status not in ("running", "paused"):
                return
            self._record_exit(c, st.read_json(c.dir / "exit.json"))
        self._after_exit(c)

    def _record_exit(self, c: Container, exit_doc: dict | None) -> None:
        s = c.state
        if exit_doc is None:
            # The supervisor died without a record (killed): its container died with it.
            exit_doc = {"exit_code": 137, "oom_killed": False, "finished_ns": time.time_ns(),
                        "error": "the container's supervisor was killed"}
            try:
                cg = self._cgroup(c)
                if cg.exists():
                    cg.kill(sig.SIGKILL)
                    cg.remove()
            except Exception as e:
                log.warning("cleaning the cgroup of %s: %s", c.id, e)
        s.status = "exited"
        s.exit_code = int(exit_doc.get("exit_code", 0))
        s.oom_killed = bool(exit_doc.get("oom_killed"))
        s.finished_ns = int(exit_doc.get("finished_ns") or time.time_ns())
        s.error = exit_doc.get("error", "") or ""
        s.pid = 0
        c.save()
        self._health_hook("stop", c)
        if self.networks is not None:
            try:
                self.networks.stop(c)      # veths, addresses, published ports and DNS go with the process
            except Exception:
                log.exception("unplugging the network of %s", c.id)
        if s.oom_killed:
            self.events.publish("container", "oom", c.id, self._attrs(c))
        self.events.publish("container", "die", c.id,
                            {**self._attrs(c), "exitCode": str(s.exit_code)})
        self._volume_events(c, "unmount")
        self._notify()

    def _after_exit(self, c: Container) -> None:
        """Apply AutoRemove or the restart policy after an exit."""
        if c.host_config.get("AutoRemove"):
            threading.Thread(target=self._auto_remove, args=(c.id,), daemon=True).start()
            return
        if not self._should_restart(c):
            return
        ran_ns = c.state.finished_ns - c.state.started_ns
        delay = self._restart_delay.get(c.id, RESTART_BASE_DELAY / 2) * 2
        if ran_ns > 10_000_000_000:
            delay = RESTART_BASE_DELAY
        delay = min(delay, RESTART_MAX_DELAY)
        self._restart_delay[c.id] = delay
        c.state.status = "restarting"
        c.save()
        self._notify()
        t = threading.Timer(delay, self._policy_restart, args=(c.id,))
        t.daemon = True
        t.start()

    def _should_restart(self, c: Container) -> bool:
        s = c.state
        if s.manually_stopped or self._closing:
            return False
        policy = c.restart_policy
        name = policy.get("Name") or "no"
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure":
            limit = int(policy.get("MaximumRetryCount") or 0)
            return s.exit_code != 0 and (limit == 0 or s.restart_count < limit)
        return False

    def _policy_restart(self, cid: str) -> None:
        with self._lock:
            c = self._containers.get(cid)
        if c is None:
            return
        with self._lock_for(c):
            if c.state.status != "restarting" or c.state.manually_stopped:
                return
            c.state.restart_count += 1
            c.state.status = "exited"
            try:
                self._start_locked(c, restarting=True)
            except Exception as e:
                log.warning("restarting %s: %s", cid, e)
                c.state.status = "exited"
                c.save()
                self._notify()
                return
        self.events.publish("container", "restart", c.id, self._attrs(c))

    def _auto_remove(self, cid: str) -> None:
        try:
            self.remove(cid, force=True, volumes=True)
        except NotFound:
            pass
        except Exception:
            log.exception("auto-removing %s", cid)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # ---------------------------------------------------------------- stop / kill / restart

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        """Send the stop signal, wait up to timeout seconds, then SIGKILL; NotModified when not running."""
        c = self.get(ref)
        with self._lock_for(c):
            if c.state.status == "restarting":
                c.state.manually_stopped = True
                c.state.status = "exited"
                c.save()
                self._notify()
                return
            if not c.is_running:
                raise NotModified()
            c.state.manually_stopped = True
            c.save()
        signo = parse_signal(signal or c.config.get("StopSignal") or "SIGTERM")
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            timeout = 10 if timeout is None else int(timeout)
        if timeout != 0:
            self._signal(c, signo)
            self.events.publish("container", "kill", c.id, {**self._attrs(c), "signal": str(signo)})
            if timeout < 0 or self._wait_not_running(c, timeout):
                self.events.publish("container", "stop", c.id, self._attrs(c))
                return
        self._signal(c, sig.SIGKILL, all_processes=True)
        self.events.publish("container", "kill", c.id, {**self._attrs(c), "signal": "9"})
        if not self._wait_not_running(c, 30):
            raise SystemFailure(f"container {c.id} did not stop after SIGKILL")
        self.events.publish("container", "stop", c.id, self._attrs(c))

    def kill(self, ref: str, signal: str | None = None) -> None:
        """Send a signal to the container's main process."""
        c = self.get(ref)
        signo = parse_signal(signal or "SIGKILL")
        if not c.is_running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        stop_signo = parse_signal(c.config.get("StopSignal") or "SIGTERM")
        if signo in (sig.SIGKILL, stop_signo):
            c.state.manually_stopped = True
            c.save()
        self._signal(c, signo, all_processes=signo == sig.SIGKILL)
        self.events.publish("container", "kill", c.id, {**self._attrs(c), "signal": str(signo)})

    def _signal(self, c: Container, signo: int, all_processes: bool = False) -> None:
        if c.state.status == "paused" and signo == sig.SIGKILL:
            self._cgroup(c).thaw()
        try:
            control.request(c.dir, {"op": "kill", "signal": signo, "all": all_processes})
        except (OSError, SystemFailure) as e:
            # The supervisor is gone or stuck: fall back to signalling the cgroup directly.
            log.warning("control kill of %s failed (%s); signalling the cgroup", c.id, e)
            cg = self._cgroup(c)
            if cg.exists():
                cg.kill(signo)

    def _wait_not_running(self, c: Container, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while c.is_running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self.get(ref)
        try:
            self.stop(c.id, timeout, signal)
        except NotModified:
            pass
        self.start(c.id)
        self.events.publish("container", "restart", c.id, self._attrs(c))

    # ---------------------------------------------------------------- pause

    def pause(self, ref: str) -> None:
        c = self.get(ref)
        with self._lock_for(c):
            if c.state.status == "paused":
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status != "running":
                raise Conflict(f"Container {c.id} is not running")
            self._cgroup(c).freeze()
            c.state.status = "paused"
            c.save()
            self._health_hook("stop", c)      # dockerd stops probing a paused container (and says unhealthy)
        self.events.publish("container", "pause", c.id, self._attrs(c))

    def unpause(self, ref: str) -> None:
        c = self.get(ref)
        with self._lock_for(c):
            if c.state.status != "paused":
                raise Conflict(f"Container {c.id} is not paused")
            self._cgroup(c).thaw()
            c.state.status = "running"
            c.save()
            self._health_hook("start", c, resume=True)
        self.events.publish("container", "unpause", c.id, self._attrs(c))

    def _cgroup_path(self, c: Container) -> str:
        return f"{self.config.cgroup_parent}/{c.id}"

    def _cgroup(self, c: Container) -> Cgroup:
        return Cgroup.open(self._cgroup_path(c))

    # ---------------------------------------------------------------- wait

    def wait(self, ref: str, condition: str = "not-running") -> Callable[[], dict]:
        """Register a wait now; return a function that blocks until the condition holds."""
        if condition in ("", None):
            condition = "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        c = self.get(ref)
        with self._lock:
            finished_at = c.state.finished_ns
        cid = c.id

        def satisfied() -> bool:
            if condition == "removed":
                return cid not in self._containers
            if condition == "next-exit":
                return c.state.finished_ns != finished_at and c.state.status not in ("running", "paused")
            return c.state.status not in ("running", "paused", "restarting")

        def block() -> dict:
            with self._changed:
                while not satisfied():
                    self._changed.wait(1.0)
            err = {"Message": c.state.error} if c.state.error else None
            return {"StatusCode": c.state.exit_code, "Error": err}

        return block

    # ---------------------------------------------------------------- remove / rename / prune

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.is_running or c.state.status == "restarting":
            if not force:
                raise Conflict(f'cannot remove container "/{c.name}": container is running: '
                               "stop the container before removing or force remove")
            c.state.manually_stopped = True
            if c.is_running:
                self._signal(c, sig.SIGKILL, all_processes=True)
                if not self._wait_not_running(c, 30):
                    raise SystemFailure(f"could not kill container {c.id}")
        with self._lock_for(c):
            if c.state.status == "removing" and c.id not in self._containers:
                return
            c.state.status = "removing"
            c.save()
            self._finish_remove(c, volumes)

    def _finish_remove(self, c: Container, volumes: bool) -> None:
        self._health_hook("stop", c, mark=False)
        if self.networks is not None:
            try:
                self.networks.forget(c)
            except Exception as e:
                log.warning("releasing the network of %s: %s", c.id, e)
        try:
            cg = self._cgroup(c)
            if cg.exists():
                cg.remove()
        except Exception as e:
            log.warning("removing the cgroup of %s: %s", c.id, e)
        # Rename first so a crash mid-delete never leaves a half-removed container that still loads.
        trash = self.config.tmp_dir / f"rm-{c.id}"
        try:
            os.rename(c.dir, trash)
        except FileNotFoundError:
            trash = None
        except OSError as e:
            raise SystemFailure(f"removing container {c.id}: {e.strerror}") from e
        with self._lock:
            self._containers.pop(c.id, None)
            self._locks.pop(c.id, None)
            waiting = self._pending_attaches.pop(c.id, [])
        for a in waiting:
            _close_fd(a.fd)  # clients attached to a container that will never start: end their streams
        if trash is not None:
            # The container is gone once renamed away; deleting its files need not hold up the caller.
            threading.Thread(target=shutil.rmtree, args=(trash, True), daemon=True).start()
        self.execs.forget_container(c.id)
        if volumes:
            self._remove_anonymous_volumes(c)
        self.events.publish("container", "destroy", c.id, self._attrs(c))
        self._notify()

    def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        if not new_name or not NAME_RE.match(new_name):
            raise InvalidParameter(f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        new_name = new_name.lstrip("/")
        with self._lock:
            if c.name == new_name:
                raise Conflict("Renaming a container with the same name as its current name")
            for other in self._containers.values():
                if other.name == new_name:
                    raise Conflict(
                        f'Conflict. The container name "/{new_name}" is already in use by container "{other.id}". '
                        "You have to remove (or rename) that container to be able to reuse that name.")
            old = c.name
            c.name = new_name
            c.save()
        self.events.publish("container", "rename", c.id, {**self._attrs(c), "oldName": f"/{old}"})

    def prune(self, filters: dict[str, list[str]]) -> dict:
        deleted, reclaimed = [], 0
        until = filters.get("until", [])
        for c in self.all():
            if c.is_running or c.state.status in ("restarting", "removing"):
                continue
            if not _labels_match(c.labels, filters):
                continue
            if until and c.created_ns / 1e9 >= _until_cutoff(until[-1]):
                continue
            size = _dir_size(c.dir / "diff")
            try:
                self.remove(c.id)
            except NotFound:
                continue
            deleted.append(c.id)
            reclaimed += size
        self.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # ---------------------------------------------------------------- attach / resize

    def attach(self, ref: str, attach: Attach | Callable[[], Attach]) -> None:
        """Hand an attached client socket to the running supervisor, or keep it for the next start.

        attach may be a function that makes the Attach by answering the client (the API handler's hijack):
        it is called under the container's lock, the lock start() takes. `docker run` sends start as soon as
        it reads the 101, on another connection: answering first and registering after let that start run
        in between, launch the container without this client, and end its stream empty (exit 0, no output).
        """
        c = self.get(ref)
        with self._lock_for(c):
            if callable(attach):
                attach = attach()
            if c.is_running:
                import base64
                msg = {"op": "attach", "stdin": attach.stdin, "stdout": attach.stdout, "stderr": attach.stderr,
                       "framed": attach.framed, "pending": base64.b64encode(attach.pending).decode()}
                try:
                    control.request(c.dir, msg, [attach.fd])
                finally:
                    _close_fd(attach.fd)
                self.events.publish("container", "attach", c.id, self._attrs(c))
                return
            with self._lock:
                self._pending_attaches.setdefault(c.id, []).append(attach)
        self.events.publish("container", "attach", c.id, self._attrs(c))

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.is_running:
            raise Conflict(f"Container {c.id} is not running")
        control.request(c.dir, {"op": "resize", "exec": None, "height": height, "width": width})
        self.events.publish("container", "resize", c.id,
                            {**self._attrs(c), "height": str(height), "width": str(width)})

    # ---------------------------------------------------------------- helpers

    def _health_hook(self, action: str, c: Container, **kwargs) -> None:
        """Start or stop a container's health probes; a failure there never fails the lifecycle verb."""
        try:
            getattr(self.health, action)(c, **kwargs)
        except Exception:
            log.exception("health check %s for container %s", action, c.id)

    def _attrs(self, c: Container) -> dict:
        attrs = {"image": c.image_ref, "name": c.name}
        attrs.update(c.labels)
        return attrs

    def update_state_from_runtime(self, c: Container) -> None:
        """Refresh status from live facts: an exit record or a dead supervisor means not running."""
        if c.is_running and not pid_alive(c.state.supervisor_pid):
            self._on_supervisor_exit(c.id)


class ExecRegistry:
    """Exec instances: created by POST /containers/{id}/exec, run by the container's supervisor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._execs: dict[str, dict] = {}

    def add(self, doc: dict) -> None:
        with self._lock:
            self._execs[doc["ID"]] = doc

    def get(self, eid: str) -> dict:
        with self._lock:
            doc = self._execs.get(eid)
        if doc is None:
            from engine.errors import NoSuchExec
            raise NoSuchExec(eid)
        return doc

    def forget_container(self, cid: str) -> None:
        with self._lock:
            for eid in [e for e, d in self._execs.items() if d["ContainerID"] == cid]:
                del self._execs[eid]


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _labels_match(labels: dict, filters: dict[str, list[str]]) -> bool:
    for want in filters.get("label", []):
        k, _, v = want.partition("=")
        if k not in labels or ("=" in want and labels[k] != v):
            return False
    for want in filters.get("label!", []):
        k, _, v = want.partition("=")
        if k in labels and ("=" not in want or labels[k] == v):
            return False
    return True


def _until_cutoff(value: str) -> float:
    """Turn an `until` filter (timestamp or Go duration like 1h30m) into a unix time."""
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)", value)
    if m:
        total = 0.0
        for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value):
            total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        return time.time() - total
    try:
        return st.parse_time(value)
    except ValueError as e:
        raise InvalidParameter(f"invalid filter 'until={value}'") from e


def _dir_size(path: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total
