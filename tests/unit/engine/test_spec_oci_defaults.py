"""The OCI spec carries Docker's default isolation: namespaces, mounts, devices, masks, env, hostname."""

import json
from pathlib import Path

import pytest

from engine.containers.spec import (
    MASKED_PATHS, READONLY_PATHS, MountPoint, build_spec, default_masked_paths, merge_image_config,
    parse_create_body,
)
from engine.errors import SystemFailure

CID = "0123456789ab" + "c" * 52
BUNDLE = Path("/var/lib/dockweb/containers") / CID


def make(host=None, image=None, **config):
    body = {"Image": "busybox", **config}
    body.setdefault("Cmd", None if image else ["sh"])
    if host is not None:
        body["HostConfig"] = host
    opts = parse_create_body(body, None, ncpu=2)
    return opts, merge_image_config(opts, image or {})


def spec(host=None, image=None, rootfs=None, host_init=None, **kw):
    config = {k: kw.pop(k) for k in list(kw) if k[0].isupper()}
    opts, proc = make(host, image, **config)
    kw.setdefault("user", (0, 0, [0]))
    kw.setdefault("kernel", "6.1")
    kw.setdefault("arch", "x86_64")
    kw.setdefault("masked_paths", list(MASKED_PATHS))
    return build_spec(CID, opts, proc, BUNDLE, rootfs or {"path": str(BUNDLE / "rootfs"), "overlay": None},
                      "dockweb", 2, host_init, **kw)


def mount(s, dest):
    return next(m for m in s["mounts"] if m["destination"] == dest)


def test_spec_is_json_and_oci_shaped():
    s = spec()
    assert json.loads(json.dumps(s)) == s
    assert s["ociVersion"] == "1.1.0"
    assert list(s) == ["ociVersion", "process", "root", "hostname", "mounts", "linux"]
    assert s["root"] == {"path": str(BUNDLE / "rootfs"), "readonly": False}


def test_namespaces_in_moby_order():
    assert [n["type"] for n in spec()["linux"]["namespaces"]] == ["mount", "network", "uts", "pid", "ipc", "cgroup"]


def test_host_network_leaves_the_network_namespace_out_and_uses_the_host_name():
    s = spec({"NetworkMode": "host"}, hostname=None)
    assert "network" not in [n["type"] for n in s["linux"]["namespaces"]]
    assert "net.ipv4.ping_group_range" not in s["linux"]["sysctl"]
    import socket
    assert s["hostname"] == socket.gethostname()


def test_host_ipc_uts_and_cgroupns_modes_leave_those_namespaces_out():
    s = spec({"IpcMode": "host", "UTSMode": "host", "CgroupnsMode": "host"})
    assert [n["type"] for n in s["linux"]["namespaces"]] == ["mount", "network", "pid"]
    assert s["hostname"] == ""


def test_joining_a_prepared_network_namespace():
    s = spec(netns_path="/run/netns/x")
    assert {"type": "network", "path": "/run/netns/x"} in s["linux"]["namespaces"]


def test_hostname_is_the_short_id_and_in_the_env():
    s = spec()
    assert s["hostname"] == CID[:12]
    assert s["process"]["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                   "HOSTNAME=" + CID[:12]]
    s = spec(Hostname="web", Domainname="example.com")
    assert s["hostname"] == "web" and s["domainname"] == "example.com"
    assert "HOSTNAME=web" in s["process"]["env"]


def test_tty_adds_term_and_console_size():
    s = spec({"ConsoleSize": [40, 120]}, Tty=True)
    assert s["process"]["terminal"] is True
    assert "TERM=xterm" in s["process"]["env"]
    assert s["process"]["consoleSize"] == {"height": 40, "width": 120}
    assert "consoleSize" not in spec({"ConsoleSize": [40, 120]})["process"]


def test_image_env_overrides_the_default_path_and_user_env_can_unset():
    s = spec(image={"Cmd": ["sh"], "Env": ["PATH=/opt/bin", "LANG=C"]}, Env=["LANG"])
    assert s["process"]["env"] == ["PATH=/opt/bin", "HOSTNAME=" + CID[:12]]


def test_default_mounts_then_network_files():
    s = spec()
    assert [(m["destination"], m["type"], m["source"]) for m in s["mounts"]] == [
        ("/proc", "proc", "proc"), ("/dev", "tmpfs", "tmpfs"), ("/dev/pts", "devpts", "devpts"),
        ("/sys", "sysfs", "sysfs"), ("/sys/fs/cgroup", "cgroup", "cgroup"), ("/dev/mqueue", "mqueue", "mqueue"),
        ("/dev/shm", "tmpfs", "shm"), ("/etc/resolv.conf", "bind", str(BUNDLE / "resolv.conf")),
        ("/etc/hostname", "bind", str(BUNDLE / "hostname")), ("/etc/hosts", "bind", str(BUNDLE / "hosts"))]
    assert mount(s, "/dev")["options"] == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert mount(s, "/dev/pts")["options"] == ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                                               "gid=5"]
    assert "ro" in mount(s, "/sys")["options"] and "ro" in mount(s, "/sys/fs/cgroup")["options"]
    assert mount(s, "/dev/shm")["options"] == ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
    assert mount(s, "/etc/hosts")["options"] == ["rbind", "rprivate"]


def test_shm_size_and_ipc_none():
    assert mount(spec({"ShmSize": 1 << 20}), "/dev/shm")["options"][-1] == "size=1048576"
    assert "/dev/shm" not in [m["destination"] for m in spec({"IpcMode": "none"})["mounts"]]


def test_tmpfs_mounts_get_docker_options():
    s = spec({"Tmpfs": {"/run": "", "/tmp": "rw,exec,size=1m,mode=1777"}})
    assert mount(s, "/run")["options"] == ["noexec", "nosuid", "nodev", "rprivate"]
    assert mount(s, "/tmp") == {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                "options": ["nosuid", "nodev", "rprivate", "rw", "exec", "size=1m", "mode=1777"]}


def test_mounts_api_tmpfs_converts_size_and_mode():
    s = spec({"Mounts": [{"Type": "tmpfs", "Target": "/cache",
                          "TmpfsOptions": {"SizeBytes": 64 * 1024 * 1024, "Mode": 0o1777}}]})
    assert mount(s, "/cache")["options"] == ["noexec", "nosuid", "nodev", "rprivate", "mode=1777", "size=64m"]


def test_bind_mounts_sorted_by_depth_with_docker_options():
    s = spec({"Binds": ["/srv/a:/a/b/c:ro", "/srv/b:/b", "/srv/c:/c:rshared"]})
    dests = [m["destination"] for m in s["mounts"][7:]]
    assert dests == ["/b", "/c", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts", "/a/b/c"]
    assert mount(s, "/a/b/c")["options"] == ["rbind", "ro", "rprivate"]
    assert mount(s, "/b")["options"] == ["rbind", "rprivate"]
    assert mount(s, "/c")["options"] == ["rbind", "rshared"]


def test_resolved_volume_mounts_are_plain_rbinds():
    s = spec(mounts=[MountPoint("/data", "/var/lib/dockweb/volumes/v/_data")])
    assert mount(s, "/data") == {"destination": "/data", "type": "bind",
                                 "source": "/var/lib/dockweb/volumes/v/_data", "options": ["rbind"]}


def test_volume_mount_without_resolution_is_an_error():
    with pytest.raises(SystemFailure, match="needs the volumes module"):
        spec({"Binds": ["vol:/data"]})


def test_user_mount_over_etc_hosts_replaces_docker_file():
    s = spec({"Binds": ["/srv/hosts:/etc/hosts:ro"]})
    hosts = [m for m in s["mounts"] if m["destination"] == "/etc/hosts"]
    assert hosts == [{"destination": "/etc/hosts", "type": "bind", "source": "/srv/hosts",
                      "options": ["rbind", "ro", "rprivate"]}]


def test_user_dev_mount_drops_every_default_under_dev():
    s = spec({"Binds": ["/srv/dev:/dev"]})
    assert not [m for m in s["mounts"] if m["destination"].startswith("/dev/")]


def test_readonly_rootfs():
    s = spec({"ReadonlyRootfs": True, "Tmpfs": {"/run": ""}})
    assert s["root"]["readonly"] is True
    assert "ro" in mount(s, "/etc/hosts")["options"]
    assert "ro" not in mount(s, "/dev/shm")["options"] and "ro" not in mount(s, "/run")["options"]


def test_devices_and_device_cgroup_rules():
    s = spec({"DeviceCgroupRules": ["c 42:* rmw"]})
    assert [(d["path"], d["major"], d["minor"], d["fileMode"], d["uid"], d["gid"]) for d in s["linux"]["devices"]] == [
        ("/dev/null", 1, 3, 0o666, 0, 0), ("/dev/zero", 1, 5, 0o666, 0, 0), ("/dev/full", 1, 7, 0o666, 0, 0),
        ("/dev/random", 1, 8, 0o666, 0, 0), ("/dev/urandom", 1, 9, 0o666, 0, 0), ("/dev/tty", 5, 0, 0o666, 0, 0)]
    rules = s["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}

    def allowed(kind, major, minor, access="rwm"):
        """Evaluate the list like the v1 devices cgroup: the last matching rule wins."""
        verdict = False
        for r in rules:
            if r.get("type", "a") not in ("a", kind):
                continue
            if r.get("major", -1) not in (-1, major) or r.get("minor", -1) not in (-1, minor):
                continue
            if set(access) <= set(r["access"]):
                verdict = r["allow"]
        return verdict

    for major, minor in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, 4), (10, 200),
                         (42, 7)]:
        assert allowed("c", major, minor), (major, minor)
    assert allowed("b", 8, 0, "m") and not allowed("b", 8, 0, "r")
    assert not allowed("c", 10, 229) and not allowed("c", 4, 0)
    assert {"allow": True, "type": "c", "major": 42, "minor": -1, "access": "rmw"} in rules


def test_masked_and_readonly_paths_default_and_override():
    s = spec(masked_paths=None)
    assert s["linux"]["maskedPaths"] == default_masked_paths()
    assert s["linux"]["maskedPaths"][:12] == MASKED_PATHS
    assert "/proc/interrupts" in MASKED_PATHS and "/sys/devices/virtual/powercap" in MASKED_PATHS
    assert s["linux"]["readonlyPaths"] == READONLY_PATHS
    s = spec({"MaskedPaths": [], "ReadonlyPaths": []})  # --security-opt systempaths=unconfined
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == []


def test_thermal_throttle_dirs_the_host_has_are_masked(tmp_path):
    for n in (0, 1, 10):
        (tmp_path / "devices/system/cpu" / f"cpu{n}" / "thermal_throttle").mkdir(parents=True)
    (tmp_path / "devices/system/cpu/cpu2").mkdir()
    (tmp_path / "devices/system/cpu/cpufreq").mkdir()
    assert default_masked_paths(str(tmp_path))[12:] == [
        "/sys/devices/system/cpu/cpu0/thermal_throttle", "/sys/devices/system/cpu/cpu1/thermal_throttle",
        "/sys/devices/system/cpu/cpu10/thermal_throttle"]


def test_security_opts_reach_the_spec():
    s = spec({"SecurityOpt": ["no-new-privileges"]})
    assert s["process"]["noNewPrivileges"] is True
    assert "seccomp" in s["linux"]
    assert "seccomp" not in spec({"SecurityOpt": ["seccomp=unconfined"]})["linux"]
    custom = '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}'
    s = spec({"SecurityOpt": [f"seccomp={custom}"]})
    assert s["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [],
                                     "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


def test_default_sysctls_for_own_network_namespace_and_user_sysctls():
    s = spec({"Sysctls": {"net.core.somaxconn": "1024", "kernel.shmmax": "1"}})
    assert s["linux"]["sysctl"] == {"net.ipv4.ping_group_range": "0 2147483647",
                                    "net.ipv4.ip_unprivileged_port_start": "0", "net.core.somaxconn": "1024",
                                    "kernel.shmmax": "1"}


def test_ulimits_become_rlimits():
    s = spec({"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]})
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024}]


def test_cwd_user_and_oom_score():
    s = spec({"OomScoreAdj": 500}, WorkingDir="/srv", user=(33, 33, [33, 4]))
    assert s["process"]["cwd"] == "/srv"
    assert s["process"]["user"] == {"uid": 33, "gid": 33, "additionalGids": [33, 4]}
    assert s["process"]["oomScoreAdj"] == 500


def test_overlay_annotation_and_cgroups_path():
    overlay = "lowerdir=/l2:/l1,upperdir=/u,workdir=/w"
    s = spec(rootfs={"path": str(BUNDLE / "rootfs"), "overlay": overlay}, user=(0, 0, [0]))
    assert s["annotations"] == {"dockweb.rootfs.overlay": overlay}
    assert s["linux"]["cgroupsPath"] == f"dockweb/{CID}"
    opts, proc = make()
    same = build_spec(CID, opts, proc, BUNDLE, {"path": "/r"}, f"dockweb/{CID}", 2, None, user=(0, 0, [0]),
                      masked_paths=[])
    assert same["linux"]["cgroupsPath"] == f"dockweb/{CID}"  # a parent that already ends in the id is kept
    assert spec({"CgroupParent": "/custom/parent"})["linux"]["cgroupsPath"] == f"custom/parent/{CID}"


def test_init_wraps_the_command_and_binds_the_init_read_only():
    s = spec({"Init": True, "Annotations": {"a": "b"}}, Cmd=["sleep", "5"], host_init="/usr/bin/tini-static")
    assert s["process"]["args"] == ["/sbin/docker-init", "--", "sleep", "5"]
    init = mount(s, "/sbin/docker-init")
    assert init == {"destination": "/sbin/docker-init", "type": "bind", "source": "/usr/bin/tini-static",
                    "options": ["bind", "ro"]}
    assert s["mounts"].index(init) == 7  # after the defaults, before the user's mounts (moby's order)
    assert s["annotations"] == {"a": "b", "dockweb.init": "/usr/bin/tini-static"}
    with pytest.raises(SystemFailure, match="no init binary"):
        spec({"Init": True})


def test_spec_is_independent_of_module_constants():
    s = spec()
    s["linux"]["resources"]["devices"][1]["access"] = "x"
    s["mounts"][0]["options"].append("x")
    again = spec()
    assert again["linux"]["resources"]["devices"][1]["access"] == "rwm"
    assert "x" not in again["mounts"][0]["options"]


def test_user_is_looked_up_in_the_rootfs_by_default(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nweb:x:80:81::/:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nweb:x:81:\nextra:x:90:web\n")
    opts, proc = make(User="web")
    s = build_spec(CID, opts, proc, BUNDLE, {"path": str(tmp_path), "overlay": None}, "dockweb", 2, None,
                   masked_paths=[], kernel="6.1")
    assert s["process"]["user"] == {"uid": 80, "gid": 81, "additionalGids": [81, 90]}
    assert s["process"]["capabilities"]["effective"] == []
    from engine.errors import ContainerStartError
    opts, proc = make(User="ghost")
    with pytest.raises(ContainerStartError, match="unable to find user ghost"):
        build_spec(CID, opts, proc, BUNDLE, {"path": str(tmp_path), "overlay": None}, "dockweb", 2, None,
                   masked_paths=[], kernel="6.1")
