"""Shape containers as the Engine API shows them: inspect, list items, stats, top."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from engine import state as st
from engine.containers import health as healthmod
from engine.containers.model import Container
from engine.errors import InvalidParameter, SystemFailure

DEFAULT_HOST_CONFIG = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "bridge", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0], "CapAdd": None,
    "CapDrop": None, "CgroupnsMode": "private", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None,
    "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
    "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "",
    "UsernsMode": "", "ShmSize": 67108864, "Runtime": "dockweb", "Isolation": "", "CpuShares": 0, "Memory": 0,
    "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [],
    "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0,
    "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
    "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0, "MemorySwap": 0,
    "MemorySwappiness": None, "OomKillDisable": None, "PidsLimit": None, "Ulimits": [], "CpuCount": 0,
    "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "Mounts": None, "Tmpfs": None, "Init": None,
    "MaskedPaths": [], "ReadonlyPaths": [],
}


def state_doc(c: Container) -> dict:
    s = c.state
    return {
        "Status": s.status,
        "Running": s.status in ("running", "paused"),
        "Paused": s.status == "paused",
        "Restarting": s.status == "restarting",
        "OOMKilled": s.oom_killed,
        "Dead": s.status == "dead",
        "Pid": s.pid if s.status in ("running", "paused") else 0,
        "ExitCode": s.exit_code,
        "Error": s.error,
        "StartedAt": st.rfc3339(s.started_ns),
        "FinishedAt": st.rfc3339(s.finished_ns),
    }


def inspect_doc(c: Container, config) -> dict:
    """Build GET /containers/{id}/json."""
    host_config = {**DEFAULT_HOST_CONFIG, **c.host_config}
    try:
        spec = st.read_json(c.dir / "config.json") or {}
    except Exception:
        spec = {}
    linux = spec.get("linux", {})
    host_config["MaskedPaths"] = linux.get("maskedPaths", [])
    host_config["ReadonlyPaths"] = linux.get("readonlyPaths", [])
    overlay = (spec.get("annotations") or {}).get("dockweb.rootfs.overlay", "")
    lower = re.search(r"lowerdir=([^,]*)", overlay)
    return {
        "Id": c.id,
        "Created": st.rfc3339(c.created_ns),
        "Path": c.path,
        "Args": c.args,
        "State": _with_health(state_doc(c), c),
        "Image": c.image_id,
        "ResolvConfPath": str(c.dir / "resolv.conf"),
        "HostnamePath": str(c.dir / "hostname"),
        "HostsPath": str(c.dir / "hosts"),
        "LogPath": str(c.dir / "container-json.log"),
        "Name": f"/{c.name}",
        "RestartCount": c.state.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": lower.group(1) if lower else "",
            "MergedDir": str(c.dir / "rootfs"),
            "UpperDir": str(c.dir / "diff"),
            "WorkDir": str(c.dir / "work"),
        }},
        "Mounts": mounts_doc(c),
        "Config": c.config,
        "NetworkSettings": network_settings(c),
    }


def _with_health(doc: dict, c: Container) -> dict:
    """Add State.Health when the container has run a healthcheck (dockerd omits it otherwise)."""
    h = healthmod.read(c.dir) if c.config.get("Healthcheck") else None
    if h is not None:
        doc["Health"] = h.to_api()
    return doc


def _status_with_health(c: Container) -> str:
    """ps Status: "Up 3 seconds (healthy)" / "(health: starting)" / "(unhealthy)" for a running container."""
    text = c.status_text()
    if c.state.status == "running" and c.config.get("Healthcheck"):
        h = healthmod.read(c.dir)
        if h is not None:
            text = f"{text} ({h.text()})"
    return text


def _health_status(c: Container) -> str:
    return healthmod.status_of(c.dir) if c.config.get("Healthcheck") else healthmod.NONE


def mounts_doc(c: Container) -> list:
    """Shape the container's mount points as inspect's and ps's Mounts (Type, Name, Source, ... Propagation)."""
    out = []
    for m in c.mounts:
        doc: dict = {"Type": m.get("type", "")}
        if m.get("name"):
            doc["Name"] = m["name"]
        doc["Source"] = m.get("source", "")
        doc["Destination"] = m.get("destination", "")
        if m.get("driver"):
            doc["Driver"] = m["driver"]
        doc.update({"Mode": m.get("mode", ""), "RW": bool(m.get("rw", True)),
                    "Propagation": m.get("propagation", "")})
        out.append(doc)
    return out


def network_settings(c: Container) -> dict:
    """NetworkSettings as Docker shows it: addresses, published ports and one entry per attached network."""
    from engine.network.views import network_settings as settings
    return settings(c)


def list_item(c: Container, size: bool = False) -> dict:
    """Build one item of GET /containers/json."""
    from engine.network.views import list_fields
    cmd = " ".join([c.path, *c.args]).strip()
    ports, net_settings = list_fields(c)
    item = {
        "Id": c.id,
        "Names": [f"/{c.name}"],
        "Image": c.image_ref,
        "ImageID": c.image_id,
        "Command": cmd,
        "Created": c.created_ns // 1_000_000_000,
        "Ports": ports,
        "Labels": c.labels,
        "State": c.state.status,
        "Status": _status_with_health(c),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "bridge"},
        "NetworkSettings": net_settings,
        "Mounts": mounts_doc(c),
    }
    if size:
        item["SizeRw"] = dir_size(c.dir / "diff")
        item["SizeRootFs"] = item["SizeRw"]
    return item


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def matches_filters(c: Container, filters: dict[str, list[str]], by_ref) -> bool:
    """Apply the `docker ps --filter` keys the CLI and docker-py send."""
    known = {"id", "name", "label", "label!", "status", "exited", "ancestor", "before", "since", "health",
             "volume", "network", "publish", "expose", "isolation", "is-task"}
    for key in filters:
        if key not in known:
            raise InvalidParameter(f"invalid filter '{key}'")
    f = filters
    if "id" in f and not any(c.id.startswith(v) for v in f["id"]):
        return False
    if "name" in f and not any(re.search(v.lstrip("/"), c.name) for v in f["name"]):
        return False
    for want in f.get("label", []):
        k, eq, v = want.partition("=")
        if k not in c.labels or (eq and c.labels[k] != v):
            return False
    if "status" in f:
        valid = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}
        for v in f["status"]:
            if v not in valid:
                raise InvalidParameter(f"Invalid filter 'status={v}'")
        if c.state.status not in f["status"]:
            return False
    if "exited" in f:
        if c.state.status != "exited" or str(c.state.exit_code) not in f["exited"]:
            return False
    if "ancestor" in f:
        ok = False
        for v in f["ancestor"]:
            img = by_ref(v)
            if img is not None and img == c.image_id or v == c.image_ref:
                ok = True
        if not ok:
            return False
    if "health" in f:
        for v in f["health"]:
            if v not in healthmod.VALID_STATUSES:
                raise InvalidParameter(f"Unrecognised filter value for health: {v}")
        if _health_status(c) not in f["health"]:
            return False
    if "network" in f:
        from engine.network.views import network_refs
        if not network_refs(c) & set(f["network"]):
            return False
    if "expose" in f and not _ports_match(f["expose"], (c.config.get("ExposedPorts") or {}).keys()):
        return False
    if "publish" in f and not _ports_match(f["publish"], (c.host_config.get("PortBindings") or {}).keys()):
        return False
    if "volume" in f:
        binds = c.host_config.get("Binds") or []
        places = {part for b in binds for part in b.split(":")[:2]}
        places |= {m.get(k, "") for m in c.host_config.get("Mounts") or [] for k in ("Source", "Target")}
        if not places & set(f["volume"]):
            return False
    if "is-task" in f and "true" in f["is-task"]:
        return False
    return True


def _ports_match(wanted: list[str], ports) -> bool:
    """Match `80`, `80/tcp` or a range `8000-8080/tcp` against `<port>/<proto>` keys."""
    have = set()
    for key in ports:
        port, _, proto = key.partition("/")
        have.add((int(port), proto or "tcp"))
    for w in wanted:
        spec, _, proto = w.partition("/")
        lo, _, hi = spec.partition("-")
        try:
            lo_n, hi_n = int(lo), int(hi or lo)
        except ValueError:
            raise InvalidParameter(f"invalid filter value {w!r}: expected a port or a port range")
        if any(lo_n <= p <= hi_n and (not proto or proto == pr) for p, pr in have):
            return True
    return False


def top(c: Container, ps_args: str, pids: list[int]) -> dict:
    """Run the host's ps and keep the container's processes, as dockerd does."""
    args = ps_args.split() if ps_args else ["-ef"]
    try:
        out = subprocess.run(["ps", *args], capture_output=True, text=True, timeout=10)
    except OSError as e:
        raise SystemFailure(f"running ps: {e.strerror}") from e
    if out.returncode != 0:
        raise SystemFailure(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return {"Titles": [], "Processes": []}
    titles = lines[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        raise InvalidParameter("Couldn't find PID field in ps output")
    wanted = set(pids)
    procs = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in wanted:
            procs.append(fields)
    return {"Titles": titles, "Processes": procs}


def system_cpu_ns() -> int:
    """Total CPU time of the host in ns, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def net_stats(pid: int) -> dict:
    nets = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]
    except OSError:
        return nets
    for line in lines:
        name, _, rest = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        v = [int(x) for x in rest.split()]
        nets[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                      "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    return nets


def stats_doc(c: Container, raw: dict | None, pre: dict | None, read_ns: int, pre_ns: int) -> dict:
    """Build one stats object from cgroup samples (Docker's v1 shape; zeroes when stopped)."""
    ncpu = os.cpu_count() or 1

    def cpu(sample):
        if not sample:
            return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                    "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
        cpu_s = sample.get("cpu", {})
        doc = {"cpu_usage": {"total_usage": cpu_s.get("usage_ns", 0),
                             "usage_in_kernelmode": cpu_s.get("system_ns", 0),
                             "usage_in_usermode": cpu_s.get("user_ns", 0)},
               "system_cpu_usage": sample.get("system_cpu_ns", 0), "online_cpus": ncpu,
               "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
        if cpu_s.get("percpu"):
            doc["cpu_usage"]["percpu_usage"] = cpu_s["percpu"]
        return doc

    mem = (raw or {}).get("memory", {})
    limit = mem.get("limit") or 0
    if not limit or limit >= 1 << 62:
        limit = mem_total()
    pids = (raw or {}).get("pids", {})
    blkio = [{"major": b.get("major", 0), "minor": b.get("minor", 0), "op": b.get("op", ""),
              "value": b.get("value", 0)} for b in (raw or {}).get("blkio", [])]
    doc = {
        "name": f"/{c.name}",
        "id": c.id,
        "read": st.rfc3339(read_ns) if raw else "0001-01-01T00:00:00Z",
        "preread": st.rfc3339(pre_ns) if pre else "0001-01-01T00:00:00Z",
        "pids_stats": {"current": pids.get("current", 0), **({"limit": pids["limit"]} if pids.get("limit") else {})},
        "blkio_stats": {"io_service_bytes_recursive": blkio or None, "io_serviced_recursive": None,
                        "io_queue_recursive": None, "io_service_time_recursive": None,
                        "io_wait_time_recursive": None, "io_merged_recursive": None,
                        "io_time_recursive": None, "sectors_recursive": None},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(raw),
        "precpu_stats": cpu(pre),
        "memory_stats": {"usage": mem.get("usage", 0), "max_usage": mem.get("max_usage", 0),
                         "stats": mem.get("stats", {}), "failcnt": mem.get("failcnt", 0), "limit": limit}
        if raw else {},
    }
    if raw and c.state.pid:
        doc["networks"] = net_stats(c.state.pid)
    return doc


def sample(cgroup) -> dict | None:
    """Take one cgroup sample with the host CPU counter beside it."""
    try:
        if not cgroup.exists():
            return None
        s = cgroup.stats()
    except OSError:
        return None
    s["system_cpu_ns"] = system_cpu_ns()
    s["time_ns"] = time.time_ns()
    return s
