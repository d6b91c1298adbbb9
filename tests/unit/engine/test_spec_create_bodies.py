"""Create bodies as the docker CLI 28.2.2 and docker-py 7.1.0 send them parse into the right options."""

import copy

from engine.containers.spec import RestartPolicy, parse_create_body


def cli_body(**config) -> dict:
    """A `docker run` body: the CLI sends every Config and HostConfig field, zero values included."""
    host = config.pop("HostConfig", {})
    body = {
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": True,
        "AttachStderr": True, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": [], "Cmd": None,
        "Image": "busybox", "Volumes": {}, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": {},
        "HostConfig": {
            "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}}, "NetworkMode": "default",
            "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
            "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0], "CapAdd": None, "CapDrop": None,
            "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None,
            "IpcMode": "", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False,
            "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
            "ShmSize": 0, "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "",
            "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
            "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
            "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
            "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0,
            "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None, "Ulimits": [], "CpuCount": 0,
            "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None,
            "ReadonlyPaths": None,
        },
        "NetworkingConfig": {"EndpointsConfig": {"default": {"IPAMConfig": None, "Links": None, "Aliases": None}}},
    }
    body.update(config)
    body["HostConfig"].update(host)
    return copy.deepcopy(body)


def test_plain_run_with_auto_remove():
    o = parse_create_body(cli_body(Cmd=["true"], HostConfig={"AutoRemove": True}), None, ncpu=2)
    assert o.image == "busybox" and o.cmd == ["true"] and o.entrypoint is None
    assert o.auto_remove and o.restart_policy == RestartPolicy("no", 0)
    assert o.attach_stdout and o.attach_stderr and not o.attach_stdin
    assert o.network_mode == "bridge"  # "default" is the default bridge
    assert o.shm_size == 64 * 1024 * 1024 and o.ipc_mode == "private" and o.cgroupns_mode == "private"
    assert o.log_config == {"Type": "json-file", "Config": {}}
    assert o.pids_limit is None and o.memory == 0 and o.init is None
    assert o.warnings == [] and o.name is None


def test_interactive_tty_run():
    o = parse_create_body(cli_body(Tty=True, OpenStdin=True, StdinOnce=True, AttachStdin=True, Cmd=["sh"],
                                   HostConfig={"ConsoleSize": [40, 120]}), "box", ncpu=2)
    assert o.tty and o.open_stdin and o.stdin_once and o.attach_stdin
    assert o.console_size == (40, 120)
    assert o.name == "box"


def test_detached_run_with_volume_port_and_restart_policy():
    body = cli_body(ExposedPorts={"80/tcp": {}}, Cmd=["sleep", "1"], AttachStdout=False, AttachStderr=False,
                    HostConfig={"Binds": ["vol:/data"],
                                "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                                "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}})
    o = parse_create_body(body, "/xy", ncpu=2)
    assert o.name == "xy"
    assert o.exposed_ports == {"80/tcp": {}}
    assert o.port_bindings == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert o.restart_policy == RestartPolicy("unless-stopped", 0)
    [m] = o.mounts
    assert (m.type, m.source, m.destination, m.read_only, m.from_binds) == ("volume", "vol", "/data", False, True)


def test_the_flags_listed_in_the_reference():
    body = cli_body(Env=["K=V"], WorkingDir="/tmp", Entrypoint=["/bin/sh"], Cmd=["-c", "id"], Labels={"a": "b"},
                    Hostname="h1", User="nobody",
                    HostConfig={"CapAdd": ["CAP_NET_ADMIN"], "NanoCpus": 1500000000, "Memory": 67108864,
                                "Tmpfs": {"/run": ""}, "Init": True,
                                "Mounts": [{"Type": "volume", "Source": "v2", "Target": "/v2"},
                                           {"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": True}]})
    o = parse_create_body(body, None, ncpu=2)
    assert o.env == ["K=V"] and o.working_dir == "/tmp" and o.entrypoint == ["/bin/sh"]
    assert o.cmd == ["-c", "id"] and o.labels == {"a": "b"} and o.hostname == "h1" and o.user == "nobody"
    assert o.cap_add == ["CAP_NET_ADMIN"] and "CAP_NET_ADMIN" in o.capabilities
    assert o.nano_cpus == 1500000000 and o.memory == 67108864
    assert o.tmpfs == {"/run": ""} and o.init is True
    assert [(m.type, m.source, m.destination, m.read_only) for m in o.mounts] == [
        ("volume", "v2", "/v2", False), ("bind", "/srv", "/srv", True)]


def test_docker_py_small_body():
    body = {"Image": "busybox", "Cmd": ["echo", "hi"], "Volumes": {"/data": {}}, "NetworkDisabled": False,
            "Tty": False, "OpenStdin": False, "StdinOnce": False, "AttachStdin": False, "AttachStdout": False,
            "AttachStderr": False,
            "HostConfig": {"NetworkMode": "default", "Binds": ["pyvol:/data:rw"], "RestartPolicy": {"Name": "always"}}}
    o = parse_create_body(body, None, ncpu=2)
    assert o.restart_policy == RestartPolicy("always", 0)
    assert o.volumes == {"/data": {}}
    [m] = o.mounts
    assert (m.type, m.source, m.destination, m.read_only, m.mode) == ("volume", "pyvol", "/data", False, "rw")


def test_docker_py_body_without_host_config():
    o = parse_create_body({"Image": "busybox", "Cmd": "echo hi"}, None, ncpu=1)
    assert o.cmd == ["echo hi"]  # a string Cmd is a one-element list, as strslice decodes it
    assert o.network_mode == "bridge" and o.restart_policy.name == "no"


def test_raw_keeps_what_was_sent_for_inspect():
    body = cli_body(Cmd=["true"])
    o = parse_create_body(body, None, ncpu=2)
    assert o.raw["Config"]["Cmd"] == ["true"]
    assert o.raw["HostConfig"]["NetworkMode"] == "default"
    assert "NetworkingConfig" not in o.raw["Config"]
