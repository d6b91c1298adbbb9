"""The deduplicated v1 device rules leave the kernel with the same allow-list as writing Docker's rules one by one."""

import os

import pytest

from engine.containers.spec import DOCKER_DEVICE_RULES, RUNC_DEVICE_RULES
from engine.runtime.cgroups import Cgroup, device_rule, host_layout
from tests.integration.runtime_harness import cgroup_parent  # noqa: F401

pytestmark = pytest.mark.root

USER_RULES = [{"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},  # --device-cgroup-rule
              {"allow": True, "type": "b", "major": 8, "minor": -1, "access": "r"}]  # fmt: skip


def devices_dir(cg: Cgroup) -> str:
    d = cg.dir("devices")
    if d is None:
        pytest.skip("no v1 devices hierarchy on this host")
    return d


def written_one_by_one(cg: Cgroup, rules: list[dict]) -> None:
    d = devices_dir(cg)
    os.makedirs(d)
    for rule in rules:
        with open(os.path.join(d, "devices.allow" if rule.get("allow") else "devices.deny"), "w") as f:
            f.write(device_rule(rule))


def allow_list(cg: Cgroup) -> set[str]:
    with open(os.path.join(devices_dir(cg), "devices.list")) as f:
        return set(f.read().split("\n")) - {""}


@pytest.mark.parametrize("rules", [DOCKER_DEVICE_RULES + RUNC_DEVICE_RULES,
                                   DOCKER_DEVICE_RULES + USER_RULES + RUNC_DEVICE_RULES])  # fmt: skip
def test_create_gives_the_same_devices_list_as_every_rule_written(cgroup_parent, rules):
    if host_layout().version != 1:
        pytest.skip("cgroup v2 host: devices go through the eBPF filter")
    reference = Cgroup(f"{cgroup_parent}/one-by-one", host_layout())
    os.makedirs(os.path.dirname(devices_dir(reference)), exist_ok=True)
    written_one_by_one(reference, rules)
    deduplicated = Cgroup(f"{cgroup_parent}/deduplicated", host_layout())
    deduplicated.create({"devices": rules})
    expected = allow_list(reference)
    assert allow_list(deduplicated) == expected
    assert "c 1:3 rwm" in expected and "c *:* m" in expected and "a *:* rwm" not in expected
