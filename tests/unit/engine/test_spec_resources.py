"""Memory, CPU and pids limits reach linux.resources as dockerd computes them."""

from pathlib import Path

from engine.containers.spec import build_spec, merge_image_config, parse_create_body


def resources(host=None, ncpu=2):
    opts = parse_create_body({"Image": "b", "Cmd": ["true"], "HostConfig": host or {}}, None, ncpu=ncpu)
    s = build_spec("f" * 64, opts, merge_image_config(opts, {}), Path("/b"), {"path": "/b/rootfs"}, "dockweb", ncpu,
                   None, user=(0, 0, [0]), masked_paths=[], kernel="6.1")
    return s["linux"]["resources"]


def test_no_limits_by_default():
    r = resources()
    assert r["memory"] == {"disableOOMKiller": False}
    assert r["cpu"] == {}
    assert "pids" not in r and "blockIO" not in r


def test_memory_alone_gets_twice_as_much_swap():
    assert resources({"Memory": 64 << 20})["memory"] == {"limit": 64 << 20, "swap": 128 << 20,
                                                        "disableOOMKiller": False}


def test_memory_swap_given_or_unlimited():
    assert resources({"Memory": 64 << 20, "MemorySwap": 100 << 20})["memory"]["swap"] == 100 << 20
    assert "swap" not in resources({"Memory": 64 << 20, "MemorySwap": -1})["memory"]


def test_reservation_swappiness_and_oom_killer():
    m = resources({"Memory": 64 << 20, "MemoryReservation": 32 << 20, "MemorySwappiness": 10,
                   "OomKillDisable": True})["memory"]
    assert m["reservation"] == 32 << 20 and m["swappiness"] == 10 and m["disableOOMKiller"] is True


def test_nano_cpus_become_quota_over_a_100ms_period():
    assert resources({"NanoCpus": 1_500_000_000})["cpu"] == {"period": 100000, "quota": 150000}
    assert resources({"NanoCpus": 10_000_000})["cpu"] == {"period": 100000, "quota": 1000}


def test_explicit_cfs_values_shares_and_cpuset():
    c = resources({"CpuPeriod": 50000, "CpuQuota": 25000, "CpuShares": 512, "CpusetCpus": "0-1", "CpusetMems": "0"})
    assert c["cpu"] == {"shares": 512, "period": 50000, "quota": 25000, "cpus": "0-1", "mems": "0"}


def test_pids_limit_positive_only():
    assert resources({"PidsLimit": 100})["pids"] == {"limit": 100}
    assert "pids" not in resources({"PidsLimit": 0})
    assert "pids" not in resources({"PidsLimit": -1})


def test_blkio_weight():
    assert resources({"BlkioWeight": 300})["blockIO"] == {"weight": 300}
