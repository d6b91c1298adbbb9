"""Cgroup layout detection from mountinfo, and the files create/stats/oom read and write (fake hierarchies)."""

import pytest

from engine.errors import SystemFailure
from engine.runtime import cgroups
from engine.runtime.cgroups import Cgroup, detect, device_rule, parse_mountinfo, shares_to_weight

THIS_MACHINE = """\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = """\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""
COMOUNTED = """\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory
99 1 0:32 / /mnt/memory\\040copy rw,relatime - cgroup cgroup rw,memory
"""


def test_this_machine_is_v1_and_ignores_the_empty_unified_mount():
    layout = detect(parse_mountinfo(THIS_MACHINE))
    assert layout.version == 1
    assert layout.v1["memory"] == "/sys/fs/cgroup/memory" and layout.v1["pids"] == "/sys/fs/cgroup/pids"
    assert layout.v2 == ""
    assert ("systemd", "name=systemd") in layout.hierarchies()
    assert len(layout.hierarchies()) == 9


def test_pure_v2_is_detected():
    layout = detect(parse_mountinfo(PURE_V2))
    assert (layout.version, layout.v2, layout.hierarchies()) == (2, "/sys/fs/cgroup", [("", "")])


def test_comounted_controllers_share_one_directory_and_duplicates_are_ignored():
    layout = detect(parse_mountinfo(COMOUNTED))
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.v1_options == {"/sys/fs/cgroup/cpu,cpuacct": "cpu,cpuacct", "/sys/fs/cgroup/memory": "memory"}
    cg = Cgroup("p/c", layout)
    assert cg.dirs() == ["/sys/fs/cgroup/cpu,cpuacct/p/c", "/sys/fs/cgroup/memory/p/c"]


def test_mountinfo_escapes_are_decoded():
    assert parse_mountinfo(COMOUNTED)[2].mount_point == "/mnt/memory copy"


def test_no_cgroup_mounts_is_a_clear_error():
    with pytest.raises(SystemFailure, match="no cgroup filesystem"):
        detect(parse_mountinfo("23 1 0:21 / /sys rw - sysfs sysfs rw\n"))


def fake_v1(tmp_path):
    """A v1 layout whose hierarchies are plain directories with the root files cgroup code reads."""
    mounts = {}
    for ctrl in cgroups.V1_CONTROLLERS:
        d = tmp_path / ctrl
        d.mkdir()
        mounts[ctrl] = str(d)
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    return cgroups.Layout(version=1, v1=mounts, v1_options={v: k for k, v in mounts.items()})


def test_v1_create_writes_limits_and_the_device_allow_list(tmp_path):
    layout = fake_v1(tmp_path)
    (tmp_path / "memory" / "p").mkdir()
    (tmp_path / "memory" / "p" / "c").mkdir()
    (tmp_path / "memory" / "p" / "c" / "memory.memsw.limit_in_bytes").write_text("")  # swap accounting on
    cg = Cgroup("p/c", layout)
    cg.create({
        "memory": {"limit": 33554432, "swap": 67108864, "reservation": 1024},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1"},
        "pids": {"limit": 32},
        "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                        "access": "rwm"},
                    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"}],
    })  # fmt: skip
    read = lambda ctrl, name: (tmp_path / ctrl / "p" / "c" / name).read_text()  # noqa: E731
    assert read("memory", "memory.limit_in_bytes") == "33554432"
    assert read("memory", "memory.memsw.limit_in_bytes") == "67108864"
    assert read("memory", "memory.soft_limit_in_bytes") == "1024"
    assert read("cpu", "cpu.shares") == "512"
    assert read("cpu", "cpu.cfs_quota_us") == "50000" and read("cpu", "cpu.cfs_period_us") == "100000"
    assert read("cpuset", "cpuset.cpus") == "1"
    assert read("pids", "pids.max") == "32"
    # One write per rule, each a line (the kernel strips the newline): here they pile up in plain files.
    assert read("devices", "devices.allow").splitlines() == ["c 1:3 rwm", "c 136:* rwm"]
    assert read("devices", "devices.deny").splitlines() == ["a"]


def test_v1_cpuset_parents_inherit_cpus_and_mems(tmp_path):
    cg = Cgroup("dockweb/abc", fake_v1(tmp_path))
    cg.create({})
    for level in ("dockweb", "dockweb/abc"):
        assert (tmp_path / "cpuset" / level / "cpuset.cpus").read_text() == "0-1"
        assert (tmp_path / "cpuset" / level / "cpuset.mems").read_text() == "0"


def test_unlimited_pids_is_written_as_max(tmp_path):
    cg = Cgroup("p/c", fake_v1(tmp_path))
    cg.create({"pids": {"limit": 0}})
    assert (tmp_path / "pids" / "p" / "c" / "pids.max").read_text() == "max"


def test_device_rules_format_like_the_kernel_wants():
    assert device_rule({"allow": False, "access": "rwm"}) == "a"
    assert device_rule({"type": "c", "major": None, "minor": None, "access": "m"}) == "c *:* m"
    assert device_rule({"type": "b", "major": 8, "minor": -1}) == "b 8:* rwm"


def test_v1_stats_and_oom(tmp_path, monkeypatch):
    cg = Cgroup("c", fake_v1(tmp_path))
    cg.create({})
    files = {
        "cpuacct/c/cpuacct.usage": "123456789\n", "cpuacct/c/cpuacct.stat": "user 150\nsystem 50\n",
        "cpuacct/c/cpuacct.usage_percpu": "100 200 \n", "cpu/c/cpu.stat": "nr_periods 4\nnr_throttled 1\n"
        "throttled_time 99\n", "memory/c/memory.usage_in_bytes": "4096\n",
        "memory/c/memory.limit_in_bytes": "9223372036854771712\n", "memory/c/memory.max_usage_in_bytes": "8192\n",
        "memory/c/memory.failcnt": "0\n", "memory/c/memory.stat": "cache 0\ntotal_inactive_file 12\n",
        "memory/c/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        "pids/c/pids.current": "3\n", "pids/c/pids.max": "max\n",
        "blkio/c/blkio.throttle.io_service_bytes": "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
    }  # fmt: skip
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(cgroups.os, "sysconf", lambda name: 100)
    st = cg.stats()
    assert st["cpu"] == {"usage_ns": 123456789, "user_ns": 1_500_000_000, "system_ns": 500_000_000,
                         "percpu": [100, 200], "throttling": {"periods": 4, "throttled_periods": 1,
                                                               "throttled_time": 99}}  # fmt: skip
    assert st["memory"]["limit"] == 9223372036854771712 and st["memory"]["stats"]["total_inactive_file"] == 12
    assert st["pids"] == {"current": 3, "limit": cgroups.UNLIMITED}
    assert st["blkio"] == [{"major": 8, "minor": 0, "op": "Read", "value": 4096},
                           {"major": 8, "minor": 0, "op": "Write", "value": 0}]  # fmt: skip
    assert cg.oom_killed()


def fake_v2(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    return cgroups.Layout(version=2, v2=str(tmp_path))


def test_v2_create_enables_controllers_and_converts_values(tmp_path):
    layout = fake_v2(tmp_path)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "p" / "cgroup.subtree_control").write_text("")
    (tmp_path / "p" / "c").mkdir()
    (tmp_path / "p" / "c" / "memory.swap.max").write_text("max\n")
    cg = Cgroup("p/c", layout)
    cg.create({"memory": {"limit": 33554432, "swap": 67108864}, "cpu": {"shares": 1024, "quota": 50000,
               "period": 100000}, "pids": {"limit": 32}})  # fmt: skip
    leaf = tmp_path / "p" / "c"
    assert (tmp_path / "p" / "cgroup.subtree_control").read_text() == "+pids"  # the last one written
    assert (leaf / "memory.max").read_text() == "33554432"
    assert (leaf / "memory.swap.max").read_text() == "33554432"  # OCI swap = memory + swap
    assert (leaf / "cpu.weight").read_text() == "39"
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "pids.max").read_text() == "32"


def test_v2_stats_and_oom(tmp_path):
    cg = Cgroup("c", fake_v2(tmp_path))
    (tmp_path / "c").mkdir()
    for name, text in {"cpu.stat": "usage_usec 10\nuser_usec 6\nsystem_usec 4\n", "memory.current": "4096\n",
                       "memory.max": "max\n", "memory.events": "low 0\nmax 2\noom 1\noom_kill 1\n",
                       "memory.stat": "anon 4096\ninactive_file 0\n", "pids.current": "1\n", "pids.max": "10\n",
                       "io.stat": "8:0 rbytes=512 wbytes=1024 rios=1 wios=2\n"}.items():  # fmt: skip
        (tmp_path / "c" / name).write_text(text)
    st = cg.stats()
    assert st["cpu"]["usage_ns"] == 10_000 and st["cpu"]["user_ns"] == 6_000
    assert st["memory"]["limit"] == cgroups.UNLIMITED and st["memory"]["failcnt"] == 2
    assert st["pids"] == {"current": 1, "limit": 10}
    assert st["blkio"] == [{"major": 8, "minor": 0, "op": "read", "value": 512},
                           {"major": 8, "minor": 0, "op": "write", "value": 1024}]  # fmt: skip
    assert cg.oom_killed()


def test_cpu_shares_convert_to_weight_like_runc():
    assert [shares_to_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]


# --- v1 device rules: deduplicated, same resulting allow-list --------------------------------------------------


def dev(allow, kind=None, major=None, minor=None, access="rwm"):
    rule = {"allow": allow, "access": access}
    if kind:
        rule.update(type=kind, major=major, minor=minor)
    return rule


DOCKER_AND_RUNC = [
    dev(False), dev(True, "c", 1, 5), dev(True, "c", 1, 3), dev(True, "c", 1, 9), dev(True, "c", 1, 8),
    dev(True, "c", 5, 0), dev(True, "c", 5, 1), dev(False, "c", 10, 229),
    dev(True, "c", access="m"), dev(True, "b", access="m"), dev(True, "c", 1, 3), dev(True, "c", 1, 8),
    dev(True, "c", 1, 7), dev(True, "c", 5, 0), dev(True, "c", 1, 5), dev(True, "c", 1, 9), dev(True, "c", 136),
    dev(True, "c", 5, 2), dev(True, "c", 10, 200),
]  # fmt: skip


def test_dockers_list_with_runcs_allows_is_deny_all_then_each_allow_once():
    assert cgroups.v1_device_writes(DOCKER_AND_RUNC) == [
        ("devices.deny", "a"), ("devices.allow", "c 1:5 rwm"), ("devices.allow", "c 1:3 rwm"),
        ("devices.allow", "c 1:9 rwm"), ("devices.allow", "c 1:8 rwm"), ("devices.allow", "c 5:0 rwm"),
        ("devices.allow", "c 5:1 rwm"), ("devices.allow", "c *:* m"), ("devices.allow", "b *:* m"),
        ("devices.allow", "c 1:7 rwm"), ("devices.allow", "c 136:* rwm"), ("devices.allow", "c 5:2 rwm"),
        ("devices.allow", "c 10:200 rwm"),
    ]  # fmt: skip


def test_a_deny_takes_access_from_the_same_device_only_and_a_later_allow_gives_it_back():
    rules = [dev(False), dev(True, "c", 1, 3), dev(True, "c", access="m"), dev(False, "c", 1, 3, "w"),
             dev(False, "c", 4, 4), dev(True, "c", 4, 4, "r"), dev(True, "c", 1, 3, "r")]  # fmt: skip
    assert cgroups.v1_device_writes(rules) == [
        ("devices.deny", "a"), ("devices.allow", "c 1:3 rm"), ("devices.allow", "c *:* m"),
        ("devices.allow", "c 4:4 r"),
    ]  # fmt: skip


def test_rules_before_the_last_deny_all_are_dropped_and_a_fully_denied_device_disappears():
    rules = [dev(True, "c", 9, 9), dev(False), dev(True, "b", 8, 0), dev(False, "b", 8, 0)]
    assert cgroups.v1_device_writes(rules) == [("devices.deny", "a")]


def test_without_deny_all_last_or_with_an_odd_rule_the_rules_are_written_as_given():
    for rules in ([dev(True, "c", 1, 3), dev(True, "c", 1, 3)], [dev(False), dev(True), dev(True, "c", 1, 3)],
                  [dev(False), dev(True, "c", 1, 3, "rwx")], [dev(False), dev(False, "x", 1, 3)]):  # fmt: skip
        expected = [("devices.allow" if r["allow"] else "devices.deny", device_rule(r)) for r in rules]
        assert cgroups.v1_device_writes(rules) == expected


# --- creating the directories ----------------------------------------------------------------------------------


def test_v1_create_leaves_an_existing_cgroup_and_its_cpuset_alone(tmp_path):
    layout = fake_v1(tmp_path)
    (tmp_path / "cpuset" / "p" / "c").mkdir(parents=True)
    (tmp_path / "cpuset" / "p" / "c" / "cpuset.cpus").write_text("1")
    Cgroup("p/c", layout).create({})
    assert (tmp_path / "cpuset" / "p" / "c" / "cpuset.cpus").read_text() == "1"
    assert all((tmp_path / ctrl / "p" / "c").is_dir() for ctrl in cgroups.V1_CONTROLLERS)


def test_a_parent_cpuset_left_empty_by_a_racing_start_is_filled_before_the_child_copies_it(tmp_path):
    layout = fake_v1(tmp_path)
    (tmp_path / "cpuset" / "p").mkdir()
    for name in ("cpuset.cpus", "cpuset.mems"):
        (tmp_path / "cpuset" / "p" / name).write_text("")  # created, not yet filled
    Cgroup("p/c", layout).create({})
    assert (tmp_path / "cpuset" / "p" / "cpuset.cpus").read_text() == "0-1"
    assert (tmp_path / "cpuset" / "p" / "c" / "cpuset.cpus").read_text() == "0-1"
    assert (tmp_path / "cpuset" / "p" / "c" / "cpuset.mems").read_text() == "0"


def test_a_missing_hierarchy_is_an_error_not_created(tmp_path):
    layout = fake_v1(tmp_path)
    (tmp_path / "pids").rmdir()
    with pytest.raises(SystemFailure, match="creating cgroup p/c"):
        Cgroup("p/c", layout).create({})
    assert not (tmp_path / "pids").exists()


def test_the_hosts_layout_is_parsed_once_and_shared(monkeypatch):
    parsed = []
    monkeypatch.setattr(cgroups, "_host_layout", None)
    monkeypatch.setattr(cgroups, "parse_mountinfo", lambda text: parsed.append(1) or parse_mountinfo(THIS_MACHINE))
    first = Cgroup.open("a/b").layout
    assert Cgroup.open("c/d").layout is first and cgroups.load_layout() is first
    assert parsed == [1] and first.v1["memory"] == "/sys/fs/cgroup/memory"
