"""The cgroup v2 device filter (eBPF) really refuses devices; tried on the cgroup2 hierarchy this host has."""

import os
import secrets

import pytest

from engine.runtime.cgroups import Cgroup, Layout, parse_mountinfo
from tests.integration.runtime_harness import DOCKER_DEVICE_RULES

pytestmark = pytest.mark.root


def cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as f:
        mounts = [m.mount_point for m in parse_mountinfo(f.read()) if m.fstype == "cgroup2"]
    return mounts[0] if mounts else None


@pytest.fixture
def v2_cgroup():
    root = cgroup2_mount()
    if root is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    layout = Layout(version=2, v2=root)
    parent = f"dockweb-test-{secrets.token_hex(4)}"
    cg = Cgroup(f"{parent}/dev", layout)
    try:
        yield cg
    finally:
        cg.kill(9)
        cg.remove()
        Cgroup(parent, layout).remove()


def try_in_cgroup(cg: Cgroup, paths: list[str], mknod_at: str) -> list[str]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            cg.add(os.getpid())
            out = []
            for path in paths:
                try:
                    os.close(os.open(path, os.O_RDONLY))
                    out.append("ok")
                except OSError as e:
                    out.append(str(e.errno))
            os.mknod(mknod_at, 0o600 | 0o060000, os.makedev(8, 0))
            out.append("mknod")
            os.write(w, " ".join(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    result = os.read(r, 1000).decode().split()
    os.close(r)
    os.waitpid(pid, 0)
    return result


def test_device_filter_allows_dockers_list_and_refuses_the_rest(v2_cgroup, tmp_path):
    v2_cgroup.create({"devices": DOCKER_DEVICE_RULES})
    disk = next((f"/dev/{d}" for d in ("vda", "sda", "nvme0n1", "xvda") if os.path.exists(f"/dev/{d}")), None)
    paths = ["/dev/null", "/dev/zero", "/dev/kmsg"] + ([disk] if disk else [])
    result = try_in_cgroup(v2_cgroup, paths, str(tmp_path / "sdx"))
    assert result == ["ok", "ok", "1"] + (["1"] if disk else []) + ["mknod"]
