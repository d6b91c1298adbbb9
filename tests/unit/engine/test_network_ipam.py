"""IPAM: subnets from Docker's default pools without overlaps, addresses inside a subnet, user requests checked."""

from __future__ import annotations

import pytest

from engine.errors import Conflict, Forbidden, InvalidParameter
from engine.network import ipam
from engine.network.settings import DEFAULT_POOLS


def test_first_subnet_is_dockers_default_bridge_subnet():
    assert ipam.pick_subnet(DEFAULT_POOLS, []) == "172.17.0.0/16"


def test_next_subnets_skip_the_taken_ones_and_host_routes():
    assert ipam.pick_subnet(DEFAULT_POOLS, ["172.17.0.0/16"]) == "172.18.0.0/16"
    # A host route inside 172.18/16 makes the whole /16 unusable, as Docker checks overlaps.
    assert ipam.pick_subnet(DEFAULT_POOLS, ["172.17.0.0/16", "172.18.3.0/24"]) == "172.19.0.0/16"


def test_pools_of_smaller_subnets_are_cut_by_size():
    pools = (("10.10.0.0/16", 24),)
    assert ipam.pick_subnet(pools, ["10.10.0.0/24", "10.10.1.0/24"]) == "10.10.2.0/24"


def test_exhausted_pools_are_refused_with_dockers_message():
    with pytest.raises(Forbidden, match="could not find an available, non-overlapping IPv4 address pool"):
        ipam.pick_subnet((("10.0.0.0/24", 24),), ["10.0.0.0/8"])


def test_addresses_start_after_the_gateway_and_skip_used_ones():
    pool = ipam.default_pool("172.18.0.0/16")
    assert pool.gateway == "172.18.0.1"
    assert ipam.allocate(pool, set()) == "172.18.0.2"
    assert ipam.allocate(pool, {"172.18.0.2", "172.18.0.3"}) == "172.18.0.4"


def test_ip_range_limits_the_addresses_handed_out():
    pool = ipam.pool_from_request({"Subnet": "172.28.0.0/16", "IPRange": "172.28.5.0/24"}, [])
    assert ipam.allocate(pool, set()) == "172.28.5.1"


def test_a_full_subnet_is_a_conflict():
    pool = ipam.pool_from_request({"Subnet": "10.9.0.0/30"}, [])
    assert ipam.allocate(pool, set()) == "10.9.0.2"
    with pytest.raises(Conflict, match="no available IPv4 addresses on network n"):
        ipam.allocate(pool, {"10.9.0.2"}, network_name="n")


def test_a_static_address_must_be_free_and_inside_the_subnet():
    pool = ipam.pool_from_request({"Subnet": "172.28.0.0/16", "Gateway": "172.28.0.254"}, [])
    assert ipam.allocate(pool, set(), "172.28.0.9") == "172.28.0.9"
    with pytest.raises(Conflict, match="Address already in use"):
        ipam.allocate(pool, {"172.28.0.9"}, "172.28.0.9")
    with pytest.raises(Conflict, match="Address already in use"):
        ipam.allocate(pool, set(), "172.28.0.254")     # the gateway
    with pytest.raises(InvalidParameter, match="no configured subnet or ip-range contain the IP address 10.0.0.1"):
        ipam.allocate(pool, set(), "10.0.0.1")


@pytest.mark.parametrize("cfg, error, match", [
    ({"Subnet": "172.28.5.0/16"}, InvalidParameter, "invalid subnet 172.28.5.0/16: it should be 172.28.0.0/16"),
    ({"Subnet": "nonsense"}, InvalidParameter, "expected an IPv4 CIDR"),
    ({"Subnet": "fd00::/64"}, InvalidParameter, "IPv6 subnets are not supported"),
    ({"Subnet": "172.28.0.0/16", "Gateway": "172.29.0.1"}, InvalidParameter, "is not a host address of subnet"),
    ({"Subnet": "172.28.0.0/16", "IPRange": "172.29.0.0/24"}, InvalidParameter, "is not inside subnet"),
    ({"Subnet": "172.17.0.0/24"}, Forbidden, "Pool overlaps with other one on this address space"),
])
def test_bad_ipam_requests_are_refused(cfg, error, match):
    with pytest.raises(error, match=match):
        ipam.pool_from_request(cfg, ["172.17.0.0/16"])


def test_pool_shape_is_dockers_ipam_config():
    pool = ipam.pool_from_request({"Subnet": "172.28.0.0/16", "IPRange": "172.28.5.0/24",
                                   "AuxiliaryAddresses": {"router": "172.28.1.5"}}, [])
    assert pool.to_api() == {"Subnet": "172.28.0.0/16", "IPRange": "172.28.5.0/24", "Gateway": "172.28.0.1",
                             "AuxiliaryAddresses": {"router": "172.28.1.5"}}
    assert "172.28.1.5" not in {ipam.allocate(pool, set())}


def test_mac_follows_dockers_classic_scheme():
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"
