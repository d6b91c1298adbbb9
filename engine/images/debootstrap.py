"""Build a slim Debian base image with debootstrap from a Debian mirror: a base OS with no image registry."""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from engine.errors import InvalidParameter, SystemFailure

log = logging.getLogger(__name__)

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBOOTSTRAP = "/usr/sbin/debootstrap"

# What debuerreotype's slimify removes for the official debian:*-slim images (scripts/.slimify-excludes), and
# what it keeps among those (.slimify-includes). The same patterns go to dpkg's path-exclude/path-include, so
# packages installed later in the image stay slim too.
SLIM_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
    "/usr/share/gnome/help/*/*",
    "/usr/share/doc/kde/HTML/*/*",
    "/usr/share/omf/*/*-*.emf",
)
SLIM_INCLUDES = (
    "/usr/share/doc/*/copyright",
    "/usr/share/gnome/help/*/C/*",
    "/usr/share/doc/kde/HTML/C/*",
    "/usr/share/omf/*/*-C.emf",
    "/usr/share/locale/locale.alias",
)

# debuerreotype's minimizing config, present in every official Debian image: no downloaded .debs or package
# caches left behind by apt, no translations, compressed indexes, no "Suggests" kept by autoremove.
APT_CONF = {
    "docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
        '/var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'),
    "docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
    "docker-gzip-indexes": 'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n',
    "docker-no-languages": 'Acquire::Languages "none";\n',
}
DPKG_SPEEDUP = "force-unsafe-io\n"

# Left by the build, useless in an image (debuerreotype removes the same).
LEFTOVERS = ("var/log/dpkg.log", "var/log/bootstrap.log", "var/log/alternatives.log", "var/log/apt/history.log",
             "var/log/apt/term.log", "var/cache/ldconfig/aux-cache", "var/lib/dpkg/status-old",
             "var/lib/dpkg/diversions-old", "var/cache/debconf/config.dat-old",
             "var/cache/debconf/templates.dat-old", "etc/hostname", "etc/resolv.conf")


@dataclass
class DebianOptions:
    suite: str = "bookworm"
    variant: str = "minbase"
    mirror: str = DEFAULT_MIRROR
    tag: str = "debian:bookworm-slim"
    work_dir: Path = Path("/var/tmp")     # where the rootfs is built (needs exec and dev: debootstrap chroots)


@dataclass
class BuildResult:
    image_id: str
    tag: str
    seconds_debootstrap: float
    seconds_total: float
    rootfs_bytes: int          # apparent size of the trimmed rootfs (what the layer holds)


def run_debootstrap(target: Path, opts: DebianOptions, logfile: BinaryIO | None = None) -> None:
    """Run debootstrap into target, in a private mount namespace so its /proc and /sys mounts die with it."""
    if not os.path.exists(DEBOOTSTRAP):
        raise SystemFailure(f"{DEBOOTSTRAP} is missing: install it with `apt-get install -y debootstrap`")
    argv = ["unshare", "--mount", "--propagation", "private", DEBOOTSTRAP, f"--variant={opts.variant}",
            opts.suite, str(target), opts.mirror]
    out = logfile if logfile is not None else subprocess.PIPE
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    except OSError as e:
        raise SystemFailure(f"running debootstrap: {e.strerror}") from e
    if r.returncode != 0:
        said = (r.stdout or b"").decode(errors="replace").splitlines()[-10:]
        tail = "\n".join(said) + "\n" + _tail(target / "debootstrap" / "debootstrap.log")
        raise SystemFailure(f"debootstrap {opts.suite} from {opts.mirror} failed with exit code {r.returncode}:\n"
                            + tail.strip())


def slimify(rootfs: Path, opts: DebianOptions) -> None:
    """Trim a debootstrapped rootfs as debian:*-slim is trimmed and configure dpkg and apt to keep it that way."""
    rootfs = Path(rootfs)
    for pattern in SLIM_EXCLUDES:
        parent = rootfs / os.path.dirname(pattern).lstrip("/")
        for path in sorted(parent.glob(os.path.basename(pattern))) if parent.is_dir() else ():
            _remove_except(path, rootfs)
    dpkg_dir = rootfs / "etc/dpkg/dpkg.cfg.d"
    dpkg_dir.mkdir(parents=True, exist_ok=True)
    lines = ['# This is the "slim" variant of the Debian base image.',
             "# Many files which are normally unnecessary in containers are excluded,",
             "# and this configuration file keeps them that way."]
    lines += [f"path-exclude {p}" for p in SLIM_EXCLUDES]
    lines += [f"path-include {p}" for p in SLIM_INCLUDES]
    (dpkg_dir / "docker").write_text("\n".join(lines) + "\n")
    (dpkg_dir / "docker-apt-speedup").write_text(DPKG_SPEEDUP)
    apt_dir = rootfs / "etc/apt/apt.conf.d"
    apt_dir.mkdir(parents=True, exist_ok=True)
    for name, text in APT_CONF.items():
        (apt_dir / name).write_text(text)
    _write_sources(rootfs, opts)
    # Package lists and caches: the image's first `apt-get update` fetches fresh ones.
    _empty(rootfs / "var/lib/apt/lists", keep=("partial", "lock"))
    _empty(rootfs / "var/cache/apt", keep=("archives",))
    _empty(rootfs / "var/cache/apt/archives", keep=("partial", "lock"))
    for rel in LEFTOVERS:
        _rm(rootfs / rel)
    for d in ("dev", "proc", "sys", "run", "tmp"):
        # An image carries no device nodes or mount leftovers: the runtime makes /dev, /proc, /sys.
        top = rootfs / d
        if top.is_dir() and not os.path.ismount(top):
            for child in top.iterdir():
                _rm(child)
    shutil.rmtree(rootfs / "debootstrap", ignore_errors=True)
    machine_id = rootfs / "etc/machine-id"
    if machine_id.exists():
        machine_id.write_text("")      # each container gets its own, as in the official images


def _write_sources(rootfs: Path, opts: DebianOptions) -> None:
    """Replace debootstrap's one-line sources.list with the deb822 file the official images carry."""
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    suites = [opts.suite]
    if opts.suite not in ("sid", "unstable", "experimental"):
        suites.append(f"{opts.suite}-updates")
    text = (f"Types: deb\nURIs: {opts.mirror}\nSuites: {' '.join(suites)}\nComponents: main\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    if opts.suite not in ("sid", "unstable", "experimental") and opts.mirror.rstrip("/").endswith("/debian"):
        security = opts.mirror.rstrip("/") + "-security"
        text += (f"\nTypes: deb\nURIs: {security}\nSuites: {opts.suite}-security\nComponents: main\n"
                 "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    d = rootfs / "etc/apt/sources.list.d"
    d.mkdir(parents=True, exist_ok=True)
    (d / "debian.sources").write_text(text)


def _remove_except(path: Path, rootfs: Path) -> None:
    """Remove path (file or tree) except what SLIM_INCLUDES keeps; empty directories go too."""
    rel = "/" + str(path.relative_to(rootfs))
    if _kept(rel):
        return
    if path.is_dir() and not path.is_symlink():
        for child in list(path.iterdir()):
            _remove_except(child, rootfs)
        try:
            path.rmdir()
        except OSError:
            pass            # something inside is kept
        return
    path.unlink(missing_ok=True)


def _kept(rel: str) -> bool:
    import fnmatch
    return any(fnmatch.fnmatchcase(rel, pattern) for pattern in SLIM_INCLUDES)


def _empty(d: Path, keep: tuple[str, ...] = ()) -> None:
    if d.is_dir():
        for child in d.iterdir():
            if child.name not in keep:
                _rm(child)


def _rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def rootfs_size(rootfs: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(rootfs):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def tar_stream(rootfs: Path) -> Iterator[bytes]:
    """Yield the rootfs as one uncompressed tar (GNU tar: numeric owners, xattrs such as file capabilities)."""
    argv = ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--sort=name", "-C", str(rootfs),
            "-cf", "-", "."]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while True:
            chunk = proc.stdout.read(1 << 20)
            if not chunk:
                break
            yield chunk
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        rc = proc.wait()
    if rc != 0:
        raise SystemFailure(f"taring the rootfs {rootfs}: {err or f'tar exited with {rc}'}")


def image_changes(opts: DebianOptions) -> list[str]:
    """The Dockerfile-style changes that give the image debian:slim's config (CMD bash, PATH)."""
    return [f"ENV {DEFAULT_PATH}", 'CMD ["bash"]']


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def import_via_api(host: str, chunks: Iterator[bytes], repo: str, tag: str, changes: list[str],
                   message: str = "") -> str:
    """POST the rootfs tar to an engine's /images/create?fromSrc=- and return the new image id."""
    if not host.startswith("unix://"):
        raise InvalidParameter(f"unsupported engine host {host!r}: give unix:///path/to/engine.sock")
    query = [("fromSrc", "-"), ("repo", repo), ("tag", tag), ("message", message)] + [("changes", c) for c in changes]
    conn = _UnixConnection(host[len("unix://"):], timeout=600)
    try:
        conn.request("POST", "/images/create?" + urllib.parse.urlencode(query), body=chunks,
                     headers={"Content-Type": "application/x-tar"}, encode_chunked=True)
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
    except OSError as e:
        raise SystemFailure(f"importing into the engine at {host}: {e}") from e
    finally:
        conn.close()
    if resp.status != 200:
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
            message = body
        raise SystemFailure(f"the engine at {host} refused the import ({resp.status}): {message}")
    image_id = ""
    for line in body.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("error") or doc.get("errorDetail"):
            raise SystemFailure(f"the engine at {host} failed the import: {doc.get('error') or doc['errorDetail']}")
        image_id = doc.get("status", image_id)
    if not image_id.startswith("sha256:"):
        raise SystemFailure(f"the engine at {host} answered the import without an image id: {body[:200]}")
    return image_id


def import_into_store(root: Path, chunks: Iterator[bytes], repo: str, tag: str, changes: list[str]) -> str:
    """Import straight into the image store under root: only when no engine daemon runs on that root."""
    from engine.config import EngineConfig
    from engine.events import EventLog
    from engine.images.layers import IterReader
    from engine.images.store import ImageStore

    config = EngineConfig(root=Path(root))
    config.ensure_dirs()
    store = ImageStore(config, EventLog())
    return store.import_image(IterReader(chunks), repo=repo, tag=tag, changes=changes,
                              created_by="dockweb bootstrap-debian", src="debootstrap").id


def build(opts: DebianOptions, importer: Callable[[Iterator[bytes], str, str, list[str]], str],
          progress: Callable[[str], None] = lambda line: None, logfile: BinaryIO | None = None) -> BuildResult:
    """Debootstrap, trim and import one Debian rootfs as a single-layer image tagged opts.tag."""
    from engine.images import reference

    ref = reference.parse(opts.tag)
    if ref.digest:
        raise InvalidParameter(f"tag the image with a name[:tag], not a digest: {opts.tag}")
    repo, tag = ref.familiar_name, ref.tag or "latest"
    t0 = time.monotonic()
    Path(opts.work_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dockweb-debootstrap-", dir=opts.work_dir))
    rootfs = work / "rootfs"
    try:
        progress(f"debootstrap --variant={opts.variant} {opts.suite} from {opts.mirror} into {rootfs}")
        run_debootstrap(rootfs, opts, logfile)
        t_boot = time.monotonic() - t0
        progress(f"debootstrap done in {t_boot:.1f}s; trimming as debian:slim")
        slimify(rootfs, opts)
        size = rootfs_size(rootfs)
        progress(f"rootfs {size / 2**20:.1f} MiB; importing as {repo}:{tag}")
        image_id = importer(tar_stream(rootfs), repo, tag, image_changes(opts))
    finally:
        _remove_work_dir(work)
    return BuildResult(image_id, f"{repo}:{tag}", t_boot, time.monotonic() - t0, size)


def _remove_work_dir(work: Path) -> None:
    """Remove the build directory, never through a mount (debootstrap's ran in its own mount namespace)."""
    prefix = str(work) + "/"
    with open("/proc/self/mountinfo") as f:
        mounted = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    if mounted:
        raise SystemFailure(f"not removing {work}: mounts remain under it ({', '.join(mounted)})")
    shutil.rmtree(work, ignore_errors=True)
