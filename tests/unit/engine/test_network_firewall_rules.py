"""The iptables rules are computed whole from the state: DNAT per published port, NAT and isolation per bridge."""

from __future__ import annotations

from engine.network.firewall import BridgeRules, DnatRule, render


def lines(text: str, table: str) -> list[str]:
    out, current = [], None
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif current == table and line.startswith("-A"):
            out.append(line)
    return out


def test_every_chain_is_redeclared_so_a_restore_replaces_it_whole():
    text = render([], [])
    for chain in ("DOCKWEB", "DOCKWEB-POSTROUTING", "DOCKWEB-FORWARD", "DOCKWEB-ISOLATION", "DOCKWEB-RAW"):
        assert f":{chain} - [0:0]" in text
    assert text.count("COMMIT") == 3
    assert lines(text, "nat") == [] and lines(text, "raw") == []


def test_a_published_port_is_a_dnat_to_the_container():
    text = render([BridgeRules("dockweb0", "172.17.0.0/16", False, False)],
                  [DnatRule("dockweb0", "tcp", "127.0.0.1", 8080, "172.17.0.2", 80),
                   DnatRule("dockweb0", "udp", "0.0.0.0", 5353, "172.17.0.2", 53)])
    nat = lines(text, "nat")
    assert "-A DOCKWEB -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80" in nat
    assert "-A DOCKWEB -p udp -m udp --dport 5353 -j DNAT --to-destination 172.17.0.2:53" in nat
    assert "-A DOCKWEB-POSTROUTING -s 127.0.0.0/8 -o dockweb0 -j MASQUERADE" in nat


def test_masquerading_to_the_outside_only_when_asked_and_never_for_internal_networks():
    off = lines(render([BridgeRules("b0", "172.17.0.0/16", False, False)], []), "nat")
    assert not any("! -o b0 -j MASQUERADE" in r for r in off)
    on = lines(render([BridgeRules("b0", "172.17.0.0/16", False, True),
                       BridgeRules("b1", "172.18.0.0/16", True, True)], []), "nat")
    assert "-A DOCKWEB-POSTROUTING -s 172.17.0.0/16 ! -o b0 -j MASQUERADE" in on
    assert not any("172.18.0.0/16 ! -o b1" in r for r in on)


def test_bridges_are_isolated_from_each_other_and_internal_ones_from_everything():
    flt = lines(render([BridgeRules("b0", "172.17.0.0/16", False, False),
                        BridgeRules("b1", "172.18.0.0/16", True, False)], []), "filter")
    assert "-A DOCKWEB-FORWARD -i b0 ! -o b0 -j DOCKWEB-ISOLATION" in flt
    assert "-A DOCKWEB-ISOLATION -o b1 -j DROP" in flt and "-A DOCKWEB-ISOLATION -o b0 -j DROP" in flt
    assert "-A DOCKWEB-FORWARD -i b1 ! -o b1 -j DROP" in flt
    # Isolation is decided before anything is accepted out of a bridge.
    assert flt.index("-A DOCKWEB-FORWARD -i b0 ! -o b0 -j DOCKWEB-ISOLATION") < \
        flt.index("-A DOCKWEB-FORWARD -i b0 ! -o b0 -j ACCEPT")
    assert not any(r.startswith("-A DOCKWEB-FORWARD -i b1 ! -o b1 -j ACCEPT") for r in flt)


def test_containers_cannot_reach_the_hosts_loopback_through_route_localnet():
    raw = lines(render([BridgeRules("b0", "172.17.0.0/16", False, False)], []), "raw")
    assert raw == ["-A DOCKWEB-RAW -i b0 -d 127.0.0.0/8 -j DROP"]
