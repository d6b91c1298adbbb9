"""/etc/hosts and /etc/resolv.conf as Docker writes them for bridge networks and the embedded DNS."""

from __future__ import annotations

import os

from engine.network import files


def test_hosts_lists_every_address_of_the_container_after_the_defaults():
    text = files.hosts("web", "", ["gw:host-gateway", "db:10.0.0.5"], ["172.18.0.2", "172.19.0.3"], "172.17.0.1")
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[-4:] == ["172.17.0.1\tgw", "10.0.0.5\tdb", "172.18.0.2\tweb", "172.19.0.3\tweb"]


def test_hosts_with_a_domain_names_the_fqdn_first():
    assert files.hosts("web", "example.org", [], ["172.18.0.2"], None).splitlines()[-1] == \
        "172.18.0.2\tweb.example.org web"


def test_embedded_resolv_conf_points_at_127_0_0_11_and_keeps_the_hosts_search():
    text = files.embedded_resolv_conf("nameserver 10.0.0.53\nsearch corp.example\noptions rotate\n", [], [], [],
                                      ["10.0.0.53"])
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == ["nameserver 127.0.0.11", "search corp.example", "options ndots:0 rotate"]
    assert "# ExtServers: [10.0.0.53]" in text


def test_user_dns_options_win():
    text = files.embedded_resolv_conf("search a\n", ["1.1.1.1"], ["b.example"], ["ndots:2"], ["1.1.1.1"])
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == ["nameserver 127.0.0.11", "search b.example", "options ndots:2"]
    assert "# Overrides: [nameservers search options]" in text


def test_write_in_place_keeps_the_inode_a_bind_mount_pins(tmp_path):
    p = tmp_path / "hosts"
    p.write_text("a much longer first version of the file\n")
    ino = os.stat(p).st_ino
    files.write_in_place(p, "short\n")
    assert p.read_text() == "short\n" and os.stat(p).st_ino == ino


def test_nameservers_are_read_from_resolv_conf():
    assert files.nameservers("# x\nnameserver 1.1.1.1\nnameserver ::1\nsearch x\n") == ["1.1.1.1", "::1"]
