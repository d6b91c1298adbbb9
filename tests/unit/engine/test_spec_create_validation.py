"""Every create validation answers 400 with dockerd's wording, naming the field and the value."""

import pytest

from engine.containers.spec import parse_create_body
from engine.errors import InvalidParameter


def create(host=None, name=None, ncpu=2, **config):
    body = {"Image": "busybox", "Cmd": ["true"], **config}
    if host is not None:
        body["HostConfig"] = host
    return parse_create_body(body, name, ncpu=ncpu)


def message(**kw) -> str:
    with pytest.raises(InvalidParameter) as e:
        create(**kw)
    return e.value.message


@pytest.mark.parametrize("name", ["a", "-ab", ".ab", "a b", "a/b", "ab!", "/_x"])
def test_invalid_container_names(name):
    assert message(name=name) == f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"


@pytest.mark.parametrize("name", ["ab", "/ab", "web_1", "a.b-c", "0x"])
def test_valid_container_names(name):
    assert create(name=name).name == name.lstrip("/")


@pytest.mark.parametrize("host,msg", [
    ({"RestartPolicy": {"Name": "x"}},
     "invalid restart policy: unknown policy 'x'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}},
     "invalid restart policy: maximum retry count cannot be negative"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}},
     "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ({"RestartPolicy": {"Name": "no", "MaximumRetryCount": -2}},
     "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative"),
    ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}},
     "can't create 'AutoRemove' container with restart policy"),
    ({"Memory": 1024 * 1024}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"MemorySwap": 64 << 20}, "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"MemorySwappiness": 101}, "Invalid value: 101, valid memory swappiness range is 0-100"),
    ({"MemoryReservation": 1 << 20}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 8 << 20, "MemoryReservation": 16 << 20},
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    ({"NanoCpus": 3 * 10**9}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"NanoCpus": -1}, "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    ({"NanoCpus": 10**9, "CpuPeriod": 100000}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"CpuPeriod": 500}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuQuota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"CpusetCpus": "0-7"}, "Requested CPUs are not available - requested 0-7, available: 0-1"),
    ({"CpusetCpus": "x"}, "Invalid value x for cpuset cpus: invalid format: x"),
    ({"CpusetMems": "1"}, "Requested memory nodes are not available - requested 1, available: 0"),
    ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
    ({"IOMaximumIOps": 5}, "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"),
    ({"CpuRealtimeRuntime": 5}, "Your kernel does not support CPU real-time scheduler"),
    ({"ShmSize": -1}, "SHM size can not be less than 0"),
    ({"OomScoreAdj": 1001}, "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
    ({"CapAdd": ["CAP_FOO"]}, 'invalid CapAdd: unknown capability: "CAP_FOO"'),
    ({"CapAdd": ["foo"]}, 'invalid CapAdd: unknown capability: "CAP_FOO"'),
    ({"CapDrop": ["NOPE"]}, 'invalid CapDrop: unknown capability: "CAP_NOPE"'),
    ({"SecurityOpt": ["bogus"]}, 'invalid --security-opt 1: "bogus"'),
    ({"SecurityOpt": ["x=y"]}, 'invalid --security-opt 2: "x=y"'),
    ({"SecurityOpt": ["no-new-privileges=maybe"]}, 'invalid --security-opt 2: "no-new-privileges=maybe"'),
    ({"Privileged": True},
     "privileged containers are not supported by this engine: use CapAdd for the capabilities the container needs"),
    ({"ExtraHosts": ["nohost"]}, 'bad format for add-host: "nohost"'),
    ({"ExtraHosts": ["h:1.2.3"]}, 'invalid IP address in add-host: "1.2.3"'),
    ({"PortBindings": {"x/tcp": []}}, 'invalid port specification: "x"'),
    ({"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}, 'invalid port specification: "99999"'),
    ({"Binds": [":/x"]}, "invalid volume specification: ':/x'"),
    ({"Binds": ["/a:/b:/c:/d"]}, "invalid volume specification: '/a:/b:/c:/d'"),
    ({"Binds": ["/a:rw"]}, "invalid volume specification: '/a:rw'"),
    ({"Binds": ["/a:/b:bogus"]}, "invalid mode: bogus"),
    ({"Binds": ["/a:/b:ro,rw"]}, "invalid mode: ro,rw"),
    ({"Binds": ["/a:relative"]},
     "invalid volume specification: '/a:relative': invalid mount config for type \"bind\": invalid mount path: "
     "'relative' mount path must be absolute"),
    ({"Binds": ["/a:/"]},
     "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: "
     "destination can't be '/'"),
    ({"Binds": ["/a:/x", "v:/x"]}, "Duplicate mount point: /x"),
    ({"Mounts": [{"Type": "bind", "Target": "/x"}]},
     'invalid mount config for type "bind": field Source must not be empty'),
    ({"Mounts": [{"Type": "bind", "Source": "/a"}]},
     'invalid mount config for type "bind": field Target must not be empty'),
    ({"Mounts": [{"Type": "bind", "Source": "rel", "Target": "/x"}]},
     "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"),
    ({"Mounts": [{"Type": "bind", "Source": "/a", "Target": "/x", "BindOptions": {"Propagation": "odd"}}]},
     'invalid mount config for type "bind": invalid propagation mode: odd'),
    ({"Mounts": [{"Type": "bind", "Source": "/a", "Target": "/x", "VolumeOptions": {}}]},
     'invalid mount config for type "bind": field VolumeOptions must not be specified'),
    ({"Mounts": [{"Type": "volume", "Target": "/x", "ReadOnly": True}]},
     'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes'),
    ({"Mounts": [{"Type": "volume", "Target": "/x", "BindOptions": {}}]},
     'invalid mount config for type "volume": field BindOptions must not be specified'),
    ({"Mounts": [{"Type": "tmpfs", "Source": "x", "Target": "/x"}]},
     'invalid mount config for type "tmpfs": field Source must not be specified'),
    ({"Mounts": [{"Type": "weird", "Target": "/x"}]}, 'invalid mount config for type "weird": mount type unknown'),
    ({"Tmpfs": {"/": ""}}, "invalid specification: destination can't be '/'"),
    ({"Tmpfs": {"run": ""}}, "invalid mount path: 'run' mount path must be absolute"),
    ({"Tmpfs": {"/run": "bogus"}}, 'invalid tmpfs option ["bogus"]'),
    ({"Tmpfs": {"/run": "foo=1"}}, 'invalid tmpfs option ["foo" "1"]'),
    ({"CgroupnsMode": "weird"}, "invalid cgroup namespace mode: weird"),
    ({"IpcMode": "weird"}, "invalid IPC mode: weird"),
    ({"PidMode": "weird"}, "invalid PID mode: weird"),
    ({"UTSMode": "weird"}, "invalid UTS mode: weird"),
    ({"Isolation": "hyperv"}, "invalid isolation 'hyperv' on linux"),
    ({"Annotations": {"": "x"}}, "invalid Annotations: the empty string is not permitted as an annotation key"),
    ({"NetworkMode": "container:"}, "Invalid network mode: invalid container format container:<name|id>"),
    ({"NetworkMode": "host", "Links": ["a:b"]},
     "conflicting options: host type networking can't be used with links. This would result in undefined behavior"),
    ({"Sysctls": {"kernel.pid_max": "10"}}, 'sysctl "kernel.pid_max" is not in a separate kernel namespace'),
    ({"Sysctls": {"kernel.hostname": "x"}},
     'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field'),
    ({"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}},
     'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
    ({"IpcMode": "host", "Sysctls": {"kernel.shmmax": "1"}},
     'sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace'),
    ({"Ulimits": [{"Name": "as", "Soft": 1, "Hard": 1}]}, "invalid ulimit type: as"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 2048, "Hard": 1024}]},
     "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"),
    ({"Dns": ["dns.example"]}, 'invalid IP address in Dns: "dns.example"'),
    ({"LogConfig": {"Type": "syslog"}},
     'logging driver "syslog" is not supported by this engine: use json-file, local or none'),
    ({"LogConfig": {"Type": "json-file", "Config": {"bogus": "1"}}},
     "unknown log opt 'bogus' for json-file log driver"),
    ({"LogConfig": {"Type": "json-file", "Config": {"max-file": "0"}}}, "max-file cannot be less than 1"),
    ({"LogConfig": {"Type": "json-file", "Config": {"max-size": "lots"}}}, "invalid size: 'lots'"),
    ({"DeviceCgroupRules": ["c 1:3"]}, "invalid device cgroup rule format: 'c 1:3'"),
    ({"VolumesFrom": ["other:xx"]}, "invalid mode for volumes-from: other:xx"),
    ({"Runtime": "crun"}, "unknown or invalid runtime name: crun"),
])
def test_host_config_errors(host, msg):
    assert message(host=host) == msg


@pytest.mark.parametrize("config,msg", [
    ({"WorkingDir": "rel/dir"}, "the working directory 'rel/dir' is invalid, it needs to be an absolute path"),
    ({"StopSignal": "SIGNOPE"}, "Invalid signal: SIGNOPE"),
    ({"Env": ["=x"]}, "invalid environment variable: =x"),
    ({"Env": [""]}, "invalid environment variable: "),
    ({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5}}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Healthcheck": {"Retries": -1}}, "Retries in Healthcheck cannot be negative"),
    ({"Image": ""}, "Config.Image is required: name the image to create the container from"),
])
def test_config_errors(config, msg):
    assert message(**config) == msg


def test_hostname_conflicts_with_host_uts_mode():
    assert message(Hostname="h", host={"UTSMode": "host"}) == "conflicting options: hostname and the UTS mode"


def test_an_empty_body_is_refused():
    with pytest.raises(InvalidParameter) as e:
        parse_create_body({}, None, ncpu=1)
    assert e.value.message == "Config cannot be empty in order to create a container"
    with pytest.raises(InvalidParameter):
        parse_create_body({"HostConfig": {}}, None, ncpu=1)


@pytest.mark.parametrize("host,needle", [
    ({"NetworkMode": "my net"}, "network my net not found"),
    ({"IpcMode": "container:web"}, "IPC mode 'container:web' is not supported by this engine yet"),
    ({"PidMode": "host"}, "PID mode 'host' is not supported by this engine yet"),
    ({"UsernsMode": "private"}, "user namespace mode 'private' is not supported"),
    ({"Links": ["a:b"]}, "legacy container links (--link) are not supported by this engine yet"),
    ({"Devices": [{"PathOnHost": "/dev/fuse"}]}, "device mappings (--device) are not supported"),
    ({"DeviceRequests": [{"Count": -1}]}, "device requests (--gpus) are not supported"),
    ({"StorageOpt": {"size": "1G"}}, "storage options (--storage-opt) are not supported"),
    ({"BlkioDeviceReadBps": [{"Path": "/dev/sda", "Rate": 1}]},
     "blkio throttle limits (--device-read-bps) are not supported"),
    ({"Mounts": [{"Type": "image", "Source": "x", "Target": "/x"}]}, "mount type image is not supported"),
])
def test_unsupported_options_are_refused_honestly(host, needle):
    assert needle in message(host=host)


def test_unknown_keys_are_ignored_like_docker():
    o = create(Bogus=1, host={"AlsoBogus": {"x": 1}, "NetworkMode": "none"})
    assert o.network_mode == "none"


def test_accepted_edge_values():
    o = create(host={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5}, "AutoRemove": False,
                     "MemorySwappiness": -1, "PidsLimit": -1, "CpuShares": -5, "ExtraHosts": ["gw:host-gateway",
                                                                                              "v6:::1", "n=10.0.0.1"],
                     "SecurityOpt": ["no-new-privileges:true", "label=disable", "apparmor=unconfined"]})
    assert o.restart_policy.name == "on-failure" and o.restart_policy.maximum_retry_count == 5
    assert o.memory_swappiness is None and o.pids_limit is None
    assert o.cpu_shares == 2  # dockerd clamps to its minimum instead of refusing
    assert o.no_new_privileges
    assert o.warnings == ["AppArmor is not supported by this engine: security option 'apparmor=unconfined' "
                          "is ignored"]
    assert create(host={"CpuShares": 10**6}).cpu_shares == 262144
    assert create(host={"AutoRemove": True, "RestartPolicy": {"Name": "no"}}).auto_remove
    assert create(host={"NanoCpus": 2 * 10**9}, ncpu=2).nano_cpus == 2 * 10**9


def test_oom_kill_disable_without_memory_warns():
    o = create(host={"OomKillDisable": True})
    assert o.warnings == ["OOM killer is disabled for the container, but no memory limit is set, this can result "
                          "in the system running out of resources."]
