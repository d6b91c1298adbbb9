"""Build busybox:latest from the host's static busybox, so a fresh engine can run containers with no registry."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from engine.errors import SystemFailure
from engine.images.store import Image, ImageStore

IMAGE_REPO = "busybox"
IMAGE_TAG = "latest"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""

GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""

# (path, mode) in creation order; /tmp is sticky and world-writable, /root private, as in the official image.
DIRS = (("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("home", 0o755), ("proc", 0o755), ("root", 0o700),
        ("sys", 0o755), ("tmp", 0o1777), ("usr", 0o755), ("usr/sbin", 0o755), ("var", 0o755),
        ("var/spool", 0o755), ("var/spool/mail", 0o755), ("var/www", 0o755))


def busybox_applets(busybox: Path) -> list[str]:
    """Return the applet names the busybox binary provides (`busybox --list`)."""
    try:
        out = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise SystemFailure(f"listing the applets of {busybox}: {e}") from e
    return sorted({a for a in out.decode().split() if a and "/" not in a and a != "busybox"})


def build_rootfs_tar(busybox: Path) -> bytes:
    """Return a deterministic rootfs tar: /bin/busybox, its applet symlinks, /etc/passwd and group, base dirs."""
    binary = busybox.read_bytes()
    mtime = int(busybox.stat().st_mtime)  # same binary, same tar, same image id
    buf = io.BytesIO()

    def entry(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.size, ti.linkname = kind, mode, mtime, len(data), link
        tf.addfile(ti, io.BytesIO(data) if data else None)

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, mode in DIRS:
            entry(path + "/", tarfile.DIRTYPE, mode)
        entry("bin/busybox", tarfile.REGTYPE, 0o755, binary)
        for applet in busybox_applets(busybox):
            entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        entry("etc/group", tarfile.REGTYPE, 0o644, GROUP.encode())
        entry("etc/passwd", tarfile.REGTYPE, 0o644, PASSWD.encode())
    return buf.getvalue()


def ensure_busybox(store: ImageStore, busybox_path: Path) -> Image | None:
    """Import busybox:latest built from the host's busybox when the store has no image; return it if built."""
    if not store.is_empty():
        return None
    busybox_path = Path(busybox_path)
    if not busybox_path.is_file():
        raise SystemFailure(f"cannot build the busybox image: {busybox_path} does not exist "
                            "(install busybox-static or set busybox_path)")
    data = build_rootfs_tar(busybox_path)
    version = _busybox_version(busybox_path)
    return store.import_image(
        io.BytesIO(data), repo=IMAGE_REPO, tag=IMAGE_TAG, message="",
        config={"Cmd": ["sh"], "Env": [DEFAULT_PATH]},
        created_ns=int(busybox_path.stat().st_mtime) * 1_000_000_000,
        created_by=f"dockweb bootstrap: {version} from {busybox_path}", src=str(busybox_path))


def _busybox_version(busybox: Path) -> str:
    try:
        out = subprocess.run([str(busybox)], capture_output=True, timeout=10).stdout.decode(errors="replace")
    except (OSError, subprocess.SubprocessError):
        return "BusyBox"
    first = out.splitlines()[0] if out else "BusyBox"
    return first.split(" multi-call")[0].strip() or "BusyBox"
