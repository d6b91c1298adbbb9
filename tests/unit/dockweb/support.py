"""Control-plane test support: Django on a throwaway database, a fake engine, and real Redis / PostgreSQL servers.

Imported by tests/unit/dockweb/conftest.py and by tests/integration/test_controlplane_*.py. The database is a
SQLite file in a temporary directory (threads and worker processes share it), or the PostgreSQL database named by
DOCKWEB_TEST_DATABASE_URL (never DATABASE_URL: a developer's real database must not be flushed by tests).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
_ready = False


def setup_django() -> None:
    """Configure Django once per process on a fresh, migrated test database."""
    global _ready
    if _ready:
        return
    url = os.environ.get("DOCKWEB_TEST_DATABASE_URL")
    if not url:
        tmp = tempfile.mkdtemp(prefix="dockweb-test-db-")
        atexit.register(shutil.rmtree, tmp, True)
        url = f"sqlite:///{tmp}/db.sqlite3"
    static_root = tempfile.mkdtemp(prefix="dockweb-test-static-")
    atexit.register(shutil.rmtree, static_root, True)
    os.environ.update(DJANGO_SETTINGS_MODULE="dockweb.settings", DATABASE_URL=url, DOCKWEB_CHANNEL_LAYER="memory",
                      DOCKWEB_ALLOWED_HOSTS="testserver,localhost,127.0.0.1", DOCKWEB_STATIC_ROOT=static_root)
    os.environ.setdefault("DOCKWEB_SECRET_KEY", "dockweb-tests-only-" + "x" * 40)
    os.environ.pop("DOCKWEB_DEBUG", None)
    import django
    from django.conf import settings

    django.setup()
    # PBKDF2 at its production cost takes ~0.3 s a password: far too slow for tests that make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from django.contrib.auth.hashers import get_hashers

    get_hashers.cache_clear()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0, interactive=False)
    _ready = True


@contextmanager
def rolled_back() -> Iterator[None]:
    """Run the block in a transaction that is always rolled back (isolation for in-process unit tests)."""
    from django.db import transaction

    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def flush_database() -> None:
    """Empty every table (integration tests commit: other threads and processes must see their rows)."""
    from django.core.management import call_command

    call_command("flush", verbosity=0, interactive=False)


# --- a fake engine for unit tests ---------------------------------------------------------------------------

def api_error(status: int, message: str):
    """Build the docker-py exception an engine answer with this status raises."""
    import docker.errors
    import requests

    response = requests.Response()
    response.status_code = status
    cls = {404: docker.errors.NotFound}.get(status, docker.errors.APIError)
    return cls(f"{status} error", response=response, explanation=message)


class FakeAPI:
    """The docker-py APIClient calls the services make, answered from dicts. Records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.containers_: dict[str, dict] = {}
        self.images_: dict[str, dict] = {}
        self.volumes_: dict[str, dict] = {}
        self.networks_: dict[str, dict] = {}
        self._n = 0

    # containers
    def add_container(self, name: str, labels: dict | None = None, state: str = "running",
                      image: str = "busybox") -> str:
        self._n += 1
        cid = f"{self._n:04x}" + "c" * 60
        self.containers_[cid] = {
            "Id": cid, "Name": "/" + name, "Path": "sleep", "Args": ["100"], "Image": "sha256:" + "b" * 64,
            "Created": "2025-01-01T00:00:00.000000000Z",
            "State": {"Status": state, "ExitCode": 0, "StartedAt": "2025-01-01T00:00:01Z",
                      "FinishedAt": "0001-01-01T00:00:00Z"},
            "Config": {"Image": image, "Labels": labels or {}, "Env": ["PATH=/bin", "DB_PASSWORD=hunter2"]},
            "HostConfig": {"PortBindings": {}}, "NetworkSettings": {"Ports": {}},
        }
        return cid

    def _find(self, ref: str) -> dict:
        for c in self.containers_.values():
            if c["Id"] == ref or c["Id"].startswith(ref) or c["Name"] == "/" + ref:
                return c
        raise api_error(404, f"No such container: {ref}")

    def inspect_container(self, ref):
        return self._find(ref)

    def containers(self, all=False):
        return [{"Id": c["Id"], "Names": [c["Name"]], "State": c["State"]["Status"], "Labels": c["Config"]["Labels"],
                 "Image": c["Config"]["Image"]} for c in self.containers_.values()]

    def _set(self, ref, state, name):
        self.calls.append((name, ref))
        self._find(ref)["State"]["Status"] = state

    def start(self, ref):
        self._set(ref, "running", "start")

    def stop(self, ref, timeout=None):
        self._set(ref, "exited", "stop")

    def restart(self, ref, timeout=None):
        self._set(ref, "running", "restart")

    def kill(self, ref, signal=None):
        self._set(ref, "exited", "kill")

    def remove_container(self, ref, v=False, force=False):
        self.calls.append(("remove", ref))
        del self.containers_[self._find(ref)["Id"]]

    def logs(self, ref, **kwargs):
        self._find(ref)
        return b"hello from the fake engine\n"

    def create_host_config(self, **kwargs):
        return kwargs

    def create_container(self, image, command=None, name=None, labels=None, **kwargs):
        self.calls.append(("create", image, name, labels))
        return {"Id": self.add_container(name or f"auto{self._n}", labels, state="created", image=image)}

    def prune_containers(self, filters=None):
        self.calls.append(("prune_containers", filters))
        return {"ContainersDeleted": [], "SpaceReclaimed": 0}

    # images
    def add_image(self, tag: str, labels: dict | None = None) -> str:
        self._n += 1
        iid = "sha256:" + f"{self._n:04x}" + "a" * 60
        self.images_[iid] = {"Id": iid, "RepoTags": [tag], "Size": 1000, "Created": 1700000000,
                             "Labels": labels or {}}
        return iid

    def images(self, all=False):
        return list(self.images_.values())

    def _image(self, ref):
        for i in self.images_.values():
            if i["Id"] == ref or ref in i["RepoTags"]:
                return i
        raise api_error(404, f"No such image: {ref}")

    def inspect_image(self, ref):
        return self._image(ref)

    def history(self, ref):
        self._image(ref)
        return [{"Id": ref, "Created": 0, "CreatedBy": "fake", "Tags": None, "Size": 0, "Comment": ""}]

    def remove_image(self, ref, force=False):
        self.calls.append(("remove_image", ref))
        del self.images_[self._image(ref)["Id"]]

    def tag(self, ref, repo, tag):
        self.calls.append(("tag", ref, repo, tag))
        self._image(ref)["RepoTags"].append(f"{repo}:{tag}")
        return True

    def prune_images(self, filters=None):
        self.calls.append(("prune_images", filters))
        return {"ImagesDeleted": [], "SpaceReclaimed": 0}

    def pull(self, ref, stream=False, decode=False):
        self.calls.append(("pull", ref))
        raise api_error(404, f"pull access denied for {ref}, repository does not exist or may require 'docker login'")

    # volumes
    def add_volume(self, name: str, labels: dict | None = None) -> None:
        self.volumes_[name] = {"Name": name, "Driver": "local", "Mountpoint": f"/var/lib/x/{name}",
                               "Labels": labels or {}, "CreatedAt": "2025-01-01T00:00:00Z"}

    def volumes(self):
        return {"Volumes": list(self.volumes_.values())}

    def inspect_volume(self, name):
        if name not in self.volumes_:
            raise api_error(404, f"get {name}: no such volume")
        return self.volumes_[name]

    def create_volume(self, name=None, driver="local", labels=None):
        self.calls.append(("create_volume", name, labels))
        self.add_volume(name, labels)
        return self.volumes_[name]

    def remove_volume(self, name, force=False):
        self.calls.append(("remove_volume", name))
        self.inspect_volume(name)
        del self.volumes_[name]

    def prune_volumes(self, filters=None):
        self.calls.append(("prune_volumes", filters))
        return {"VolumesDeleted": [], "SpaceReclaimed": 0}

    # networks
    def add_network(self, name: str, labels: dict | None = None) -> str:
        self._n += 1
        nid = f"{self._n:064x}"
        self.networks_[nid] = {"Id": nid, "Name": name, "Driver": "bridge", "Labels": labels or {},
                               "IPAM": {"Config": [{"Subnet": f"10.9.{self._n}.0/24"}]}, "Containers": {},
                               "Created": "2025-01-01T00:00:00Z"}
        return nid

    def networks(self, names=None, ids=None, filters=None):
        return [dict(n, Containers={}) for n in self.networks_.values()]

    def inspect_network(self, ref):
        for n in self.networks_.values():
            if ref in (n["Id"], n["Name"]):
                return n
        raise api_error(404, f"network {ref} not found")

    def remove_network(self, ref):
        self.calls.append(("remove_network", ref))
        del self.networks_[self.inspect_network(ref)["Id"]]

    def connect_container_to_network(self, container, net_id, aliases=None):
        self.calls.append(("connect", container, net_id))
        c = self._find(container)
        self.inspect_network(net_id)["Containers"][c["Id"]] = {"Name": c["Name"].lstrip("/"),
                                                                "IPv4Address": "10.9.0.2/24"}

    def disconnect_container_from_network(self, container, net_id, force=False):
        self.calls.append(("disconnect", container, net_id))
        self.inspect_network(net_id)["Containers"].pop(self._find(container)["Id"], None)

    # dockweb's own endpoints (client.extension): an empty folder for every volume
    def _url(self, path):
        return path

    def _get(self, url, params=None, stream=False):
        import json

        import requests

        self.calls.append(("GET", url, params))
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps({"Path": "/", "Entries": [], "Total": 0, "Truncated": False}).encode()
        return response

    def _raise_for_status(self, response):
        pass

    # system
    def ping(self):
        return True

    def version(self):
        return {"Version": "fake-1.0"}


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeAPI()


# --- real servers for integration tests ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process we started (by its pid), then SIGKILL it if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def redis_server() -> Iterator[str]:
    """Run a private redis-server on a free loopback port in a temporary directory; yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (./dockweb.sh test installs the redis-server package)")
    tmp = Path(tempfile.mkdtemp(prefix="dockweb-test-redis-"))
    port = free_port()
    log = open(tmp / "redis.log", "wb")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp), "--save", "",
                             "--appendonly", "no", "--daemonize", "no"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Run a throwaway PostgreSQL cluster (initdb, pg_ctl) on a free loopback port; yield a database URL.

    As root the cluster runs as the postgres user (PostgreSQL refuses to run as root); otherwise as the caller.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (./dockweb.sh test installs the postgresql package)")
    run_as: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="dockweb-test-pg-"))
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = tmp / "data", free_port()
    try:
        subprocess.run([*run_as, initdb, "-D", str(data), "-U", "dockweb", "--auth=trust", "-E", "UTF8",
                        "--no-locale"], check=True, capture_output=True, timeout=120)
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={tmp} -c fsync=off"
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-o", options, "-l", str(tmp / "pg.log"), "-w",
                        "-t", "60", "start"], check=True, capture_output=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        detail = getattr(e, "stderr", b"") or b""
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start here: {detail.decode(errors='replace').strip()[-300:]}")
    try:
        yield f"postgres://dockweb@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
