"""The in-container start sequence (runc's order): from a forked child to an isolated, exec'd container process."""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import resource
import signal
import socket
import stat
import struct
import termios
from pathlib import Path
from typing import NoReturn

from engine.errors import EngineError
from engine.runtime import caps, mounts, namespaces
from engine.runtime import seccomp as seccomp_mod
from engine.runtime import sys as linux
from engine.runtime.cgroups import Cgroup, host_layout

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OVERLAY_ANNOTATION = "dockweb.rootfs.overlay"
INIT_ANNOTATION = "dockweb.init"
INIT_DEST = "/sbin/docker-init"


class InitError(Exception):
    """A start failure with the one-line message the user sees and the exit code to report."""

    def __init__(self, message: str, code: int = 127) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _go_error(e: OSError) -> str:
    # Go (runc, docker) spells errno strings in lower case: "no such file or directory".
    text = os.strerror(e.errno) if e.errno else str(e)
    return text[:1].lower() + text[1:]


class step:
    """Turn a failure inside one init step into an InitError that says which step failed.

    A plain class rather than a @contextmanager generator: the init enters some 25 steps, and this is the
    cheap way (no generator and wrapper object per step).
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, e: BaseException | None, tb: object) -> bool:
        if isinstance(e, InitError) or e is None:
            return False
        if isinstance(e, OSError):
            raise InitError(f"{self.what}: {_go_error(e)}", 126 if e.errno == errno.EACCES else 127) from e
        if isinstance(e, EngineError):
            raise InitError(f"{self.what}: {e.message}") from e
        return False


def _fail(error_fd: int, message: str, code: int) -> NoReturn:
    try:
        os.write(error_fd, message.encode(errors="replace"))
    finally:
        os._exit(code)


def warm_up() -> None:
    """Compute the host facts every init and exec needs once, in the process that forks them (the launcher).

    Forked children inherit them instead of each re-reading /proc: the cgroup layout (mountinfo), the kernel's
    last capability, the libc symbols. Never fails: whatever cannot be computed here is computed (and its error
    reported) by the init.
    """
    # The last three only read: they run the ctypes, socket and ioctl code once, here, instead of in each child.
    for fact in (host_layout, caps.last_cap, linux.resolve, linux.capget, namespaces.loopback_is_up,
                 lambda: linux.prctl(linux.PR_GET_NO_NEW_PRIVS)):  # fmt: skip
        try:
            fact()
        except (OSError, EngineError):
            pass


def container_main(bundle: Path, spec: dict, stdio: tuple[int, int, int], console_sock: int | None,
                   seccomp_bpf: bytes | None, error_fd: int) -> NoReturn:  # fmt: skip
    """Turn this forked child (pid 1 of a new pid namespace) into the container's process; never returns.

    With console_sock (process.terminal), the init makes its pty in the container's own devpts and sends the
    master over that socket (runc's console socket); stdio is then only used until the pty replaces it.
    """
    # This process execs or exits within milliseconds: a collection would only walk (and so copy) the forking
    # parent's objects.
    gc.disable()
    try:
        _container_init(Path(bundle), spec, stdio, console_sock, seccomp_bpf, error_fd)
        raise InitError("container init returned without exec")
    except InitError as e:
        _fail(error_fd, e.message, e.code)
    except BaseException as e:  # noqa: BLE001 - a forked child must never unwind into the caller's code
        _fail(error_fd, f"container init: {type(e).__name__}: {e}", 127)


def exec_main(init_pid: int, spec: dict, process: dict, stdio: tuple[int, int, int], console_sock: int | None,
              seccomp_bpf: bytes | None, error_fd: int) -> NoReturn:  # fmt: skip
    """Join a running container (cgroup, namespaces) and exec process in it; never returns."""
    gc.disable()  # as in container_main
    try:
        _exec_init(init_pid, spec, process, stdio, console_sock, seccomp_bpf, error_fd)
        raise InitError("exec init returned without exec")
    except InitError as e:
        _fail(error_fd, e.message, e.code)
    except BaseException as e:  # noqa: BLE001
        _fail(error_fd, f"exec init: {type(e).__name__}: {e}", 127)


# --- the two sequences -------------------------------------------------------------------------------------


def _container_init(bundle: Path, spec: dict, stdio: tuple[int, int, int], console_sock: int | None,
                    bpf: bytes | None, error_fd: int) -> None:  # fmt: skip
    process = spec.get("process") or {}
    linux_spec = spec.get("linux") or {}
    set_pdeathsig()
    with step("setting up stdio"):
        setup_stdio(stdio, error_fd)
    if linux_spec.get("cgroupsPath"):
        with step(f"joining cgroup {linux_spec['cgroupsPath']}"):
            cg = Cgroup.open(linux_spec["cgroupsPath"])
            cg.create(linux_spec.get("resources") or {})
            cg.add_self()
    ns_types = {ns.get("type") for ns in linux_spec.get("namespaces") or ()}
    if "mount" not in ns_types:
        raise InitError("a mount namespace is required (linux.namespaces has no \"mount\")")
    if "user" in ns_types:
        raise InitError("user namespaces are not supported by this runtime (linux.namespaces has \"user\")")
    with step("creating namespaces"):
        namespaces.enter(linux_spec.get("namespaces") or [], skip=("pid",))
    if "network" in ns_types:
        with step("bringing up the loopback interface"):
            namespaces.loopback_up()
    rootfs = setup_rootfs(bundle, spec)
    with step("changing root"):
        mounts.pivot_root(rootfs)
    if console_sock is not None:
        # Like runc: after pivot_root, so /dev/ptmx is the container's devpts instance and the process sees
        # /dev/pts/0; before the read-only and masked paths, so /dev/console can still be created and bound.
        with step("setting up the console"):
            setup_console(console_sock, process, mount_console=True)
    cwd = process.get("cwd") or "/"
    with step(f'creating cwd ("{cwd}")'):
        # Docker creates the WORKDIR; runc does it here, inside the new root, as root.
        os.makedirs(cwd, 0o755, exist_ok=True)
    if (spec.get("root") or {}).get("readonly"):
        with step("remounting / read-only"):
            mounts.readonly_root()
    if "uts" in ns_types:
        with step("setting hostname"):
            if spec.get("hostname"):
                linux.sethostname(spec["hostname"])
            if spec.get("domainname"):
                linux.setdomainname(spec["domainname"])
    apply_sysctls(linux_spec.get("sysctl") or {})
    for path in linux_spec.get("readonlyPaths") or ():
        with step(f"making {path} read-only"):
            mounts.readonly_path(path)
    for path in linux_spec.get("maskedPaths") or ():
        with step(f"masking {path}"):
            mounts.mask_path(path)
    _become_process(process, bpf)


def _exec_init(init_pid: int, spec: dict, process: dict, stdio: tuple[int, int, int], console_sock: int | None,
               bpf: bytes | None, error_fd: int) -> None:  # fmt: skip
    linux_spec = spec.get("linux") or {}
    set_pdeathsig()
    with step("setting up stdio"):
        setup_stdio(stdio, error_fd)
    if linux_spec.get("cgroupsPath"):
        with step(f"joining cgroup {linux_spec['cgroupsPath']}"):
            Cgroup.open(linux_spec["cgroupsPath"]).add_self()
    ns_types = {ns.get("type") for ns in linux_spec.get("namespaces") or ()}
    kinds = [k for k in namespaces.EXEC_JOIN_ORDER if k in ns_types]
    with step(f"joining the namespaces of process {init_pid}"):
        namespaces.join_process(init_pid, kinds)
        os.chdir("/")
    if console_sock is not None:
        # After joining the mount namespace: the pty comes from the container's devpts (/dev/pts/N in there).
        with step("setting up the console"):
            setup_console(console_sock, process, mount_console=False)
    merged = dict(process)
    merged.setdefault("rlimits", (spec.get("process") or {}).get("rlimits"))
    _become_process(merged, bpf)


def _become_process(process: dict, bpf: bytes | None) -> None:
    """The steps common to init and exec: umask, rlimits, oom score, user, caps, nnp, seccomp, execve."""
    umask = (process.get("user") or {}).get("umask")
    os.umask(0o022 if umask is None else umask)
    apply_rlimits(process.get("rlimits") or [])
    if process.get("oomScoreAdj") is not None:
        with step("setting oom_score_adj"):
            set_oom_score_adj(process["oomScoreAdj"])
    nnp = bool(process.get("noNewPrivileges"))
    if nnp:
        with step("setting no_new_privs"):
            linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if bpf and not nnp:
        # Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: do it before dropping capabilities.
        with step("loading seccomp filter"):
            seccomp_mod.load_bpf(bpf)
    with step("setting user and capabilities"):
        set_user_and_caps(process.get("user") or {}, process.get("capabilities") or {}, process.get("cwd") or "/")
    set_pdeathsig()  # changing uid cleared it
    mark_fds_cloexec(keep=(0, 1, 2))
    args = process.get("args") or []
    if not args:
        raise InitError("args must not be empty")
    env = env_dict(process.get("env") or [])
    path = look_path(args[0], env.get("PATH", DEFAULT_PATH))
    if bpf and nnp:
        # As late as possible, so the profile needs to allow as few of the init's own syscalls as possible.
        with step("loading seccomp filter"):
            seccomp_mod.load_bpf(bpf)
    try:
        os.execve(path, args, env)
    except OSError as e:
        code = 126 if e.errno in (errno.EACCES, errno.EISDIR, errno.ENOEXEC) else 127
        raise InitError(f"exec {path}: {_go_error(e)}", code) from e


# --- steps -------------------------------------------------------------------------------------------------


def set_pdeathsig() -> None:
    """Die with SIGKILL when the supervisor dies."""
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)


def new_session() -> None:
    """Become the leader of a new session (without a controlling terminal) unless this process already is one."""
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader


def setup_stdio(stdio: tuple[int, int, int], error_fd: int) -> None:
    """Start a new session and install stdio as fds 0, 1, 2 (a terminal replaces them later: setup_console)."""
    new_session()
    sources = list(stdio)
    # Duplicate first so that dup2 onto 0..2 cannot clobber a source that is itself 0..2.
    dups = [os.dup(fd) for fd in sources]
    for target, fd in enumerate(dups):
        os.dup2(fd, target, inheritable=True)
    for fd in set(dups) | {s for s in sources if s > 2 and s != error_fd}:
        os.close(fd)


def setup_rootfs(bundle: Path, spec: dict) -> str:
    """Mount the rootfs, the spec's mounts and /dev; return the rootfs path to pivot into."""
    root = (spec.get("root") or {}).get("path") or "rootfs"
    rootfs = os.path.realpath(os.path.join(bundle, root))
    annotations = spec.get("annotations") or {}
    with step("making mounts private"):
        mounts.make_private("/")
    if annotations.get(OVERLAY_ANNOTATION):
        with step(f"mounting overlay rootfs at {rootfs}"):
            mounts.mount_overlay(rootfs, annotations[OVERLAY_ANNOTATION])
    else:
        with step(f"bind-mounting rootfs {rootfs}"):
            mounts.bind_root(rootfs)
    spec_mounts = list(spec.get("mounts") or [])
    hierarchies = None
    if any(m.get("type") == "cgroup" for m in spec_mounts):
        with step("reading the cgroup layout"):
            hierarchies = host_layout().hierarchies()
    for m in spec_mounts:
        with step(f"mounting {m.get('type') or 'bind'} on {m.get('destination')}"):
            mounts.mount_entry(rootfs, m, str(bundle), hierarchies)
    init_bin = annotations.get(INIT_ANNOTATION)
    if init_bin and not any(m.get("destination") == INIT_DEST for m in spec_mounts):
        with step(f"mounting the init binary {init_bin} at {INIT_DEST}"):
            mounts.mount_entry(rootfs, {"destination": INIT_DEST, "type": "bind", "source": init_bin,
                                        "options": ["bind", "ro"]}, str(bundle))  # fmt: skip
    # Like runc: a bind-mounted /dev (--privileged style setups) is used as is; otherwise create the nodes.
    if not any(_is_dev_bind(m) for m in spec_mounts):
        with step("creating device nodes"):
            mounts.create_devices(rootfs, (spec.get("linux") or {}).get("devices") or [])
            mounts.create_dev_symlinks(rootfs)
    return rootfs


def setup_console(console_sock: int, process: dict, mount_console: bool) -> None:
    """Make a pty in this mount namespace's devpts, send its master over console_sock, make the slave our tty.

    The one place of the pty dance, for the init (mount_console: the slave is also bound over /dev/console) and
    for an exec. Runs as root before the user and capabilities change; the slave becomes the controlling
    terminal and fds 0, 1, 2.
    """
    # O_NOCTTY: we are a session leader without a terminal, and the master must never become one.
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, linux.TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        number = struct.unpack("I", fcntl.ioctl(master, linux.TIOCGPTN, struct.pack("I", 0)))[0]
        slave_path = f"/dev/pts/{number}"
        slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        size = process.get("consoleSize") or {}
        if size.get("height") and size.get("width"):
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size["height"], size["width"], 0, 0))
        # The process's user owns its terminal (so it can reopen /dev/pts/N, /proc/self/fd/0); group tty may
        # write to it (write(1), wall), as with runc and devpts' mode=0620,gid=5.
        os.fchown(slave, (process.get("user") or {}).get("uid", 0), tty_group_gid())
        os.fchmod(slave, 0o620)
        if mount_console:
            mounts.bind_console("/", slave_path)
        with socket.socket(fileno=os.dup(console_sock)) as sock:
            socket.send_fds(sock, [b"\0"], [master])
    finally:
        os.close(master)  # the supervisor has its own copy now: none may stay in the container
        os.close(console_sock)
    new_session()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target, inheritable=True)
    if slave > 2:
        os.close(slave)


def tty_group_gid(group_file: str = "/etc/group", root: str = "/") -> int:
    """The gid of the "tty" group in group_file, or -1 (keep the gid devpts gave the slave) without one."""
    try:
        # O_NONBLOCK, and only a regular file of the root filesystem: an image's /etc/group (a FIFO, a symlink
        # into /proc) must not hang the init or make it read a kernel file as root.
        fd = os.open(group_file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return -1
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_dev != os.stat(root).st_dev:
            return -1
        try:
            data = f.read(1 << 20)
        except OSError:
            return -1
    for line in data.decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == "tty" and fields[2].isdigit():
            return int(fields[2])
    return -1


def _is_dev_bind(m: dict) -> bool:
    opts = m.get("options") or []
    return (m.get("destination") or "").rstrip("/") == "/dev" and (
        m.get("type") == "bind" or "bind" in opts or "rbind" in opts
    )


def apply_sysctls(sysctls: dict[str, str]) -> None:
    """Write each sysctl under /proc/sys (namespaced ones only make sense; the kernel refuses others)."""
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        with step(f"setting sysctl {key}"):
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(value).encode())
            finally:
                os.close(fd)


def apply_rlimits(rlimits: list[dict]) -> None:
    """Set the spec's rlimits, clamped to the current hard limit (root here cannot raise hard limits)."""
    for rl in rlimits:
        name = rl.get("type", "")
        res = getattr(resource, name, None)
        if res is None or not name.startswith("RLIMIT_"):
            raise InitError(f"unknown rlimit type {name!r}")
        _, cur_hard = resource.getrlimit(res)

        def clamp(v: int) -> int:
            v = resource.RLIM_INFINITY if v is None or v < 0 or v >= 2**63 else v
            if cur_hard == resource.RLIM_INFINITY:
                return v
            return cur_hard if v == resource.RLIM_INFINITY else min(v, cur_hard)

        hard, soft = clamp(rl.get("hard")), clamp(rl.get("soft"))
        if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft > hard):
            soft = hard
        with step(f"setting {name}"):
            resource.setrlimit(res, (soft, hard))


def set_oom_score_adj(value: int) -> None:
    """Write /proc/self/oom_score_adj unless it already has that value (lowering it needs CAP_SYS_RESOURCE)."""
    fd = os.open("/proc/self/oom_score_adj", os.O_RDWR | os.O_CLOEXEC)
    try:
        if int(os.read(fd, 32)) != value:
            os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as e:
        raise InitError(f'chdir to cwd ("{cwd}") set in config.json failed: {_go_error(e)}',
                        126 if e.errno == errno.EACCES else 127) from e  # fmt: skip


def set_user_and_caps(user: dict, capabilities: dict, cwd: str = "/") -> None:
    """Bounding set, uid/gid/groups keeping the permitted set, cwd, then the process's capabilities (runc)."""
    # runc tries the chdir as root first (a cwd only root can reach still works, like Docker) and retries it
    # as the user only if root was refused.
    try:
        os.chdir(cwd)
        chdir_pending = False
    except PermissionError:
        chdir_pending = True
    except OSError:
        _chdir(cwd)  # raises with the runc wording
    last = caps.last_cap()
    caps.drop_bounding(caps.to_mask(capabilities.get("bounding"), last), last)
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    caps.set_keep_caps(True)
    os.setgroups(list(user.get("additionalGids") or []))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if chdir_pending:
        _chdir(cwd)  # no effective capabilities right now: the plain user's permission check
    caps.set_keep_caps(False)
    caps.apply(capabilities, last)


def mark_fds_cloexec(keep: tuple[int, ...] = (0, 1, 2)) -> None:
    """Set FD_CLOEXEC on every fd but keep, so nothing of the supervisor leaks into the container."""
    if keep == (0, 1, 2):
        try:
            linux.close_range(3, 0xFFFFFFFF, linux.CLOSE_RANGE_CLOEXEC)  # one syscall for every fd from 3 up
            return
        except OSError:
            pass  # before Linux 5.11: one fd at a time
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in keep:
            continue
        try:
            os.set_inheritable(fd, False)
        except OSError:
            pass  # the fd listdir itself used, already closed


def env_dict(env: list[str]) -> dict[str, str]:
    """Turn ["K=V", ...] into a dict (later entries win, as execve would see the last)."""
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _check_executable(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError as e:
        return f"stat {path}: {_go_error(e)}"
    if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
        return "permission denied"
    return None


def look_path(name: str, path_env: str) -> str:
    """Resolve args[0] on PATH like Go's exec.LookPath (what runc uses), with its error messages."""
    if "/" in name:
        err = _check_executable(name)
        if err:
            raise InitError(f'exec: "{name}": {err}', 126 if err == "permission denied" else 127)
        return name
    for d in path_env.split(":"):
        candidate = os.path.join(d or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue  # as Go: a miss (or an unreadable directory) moves on to the next PATH entry
        if not stat.S_ISDIR(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise InitError(f'exec: "{name}": executable file not found in $PATH', 127)
