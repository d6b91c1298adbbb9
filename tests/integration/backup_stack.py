"""Shared pieces of the scheduled-backup integration tests: a real Redis, Celery worker and beat processes on the
test's SQLite file, a moto S3 server on 127.0.0.1, volume trees to fill and compare."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.integration.polling import wait_for
from tests.unit.dockweb.support import REPO, free_port, stop_process, wait_for_port


class Proc:
    """A celery worker or beat process we started, with its log."""

    def __init__(self, name: str, argv: list[str], env: dict, tmp: Path) -> None:
        self.name = name
        self.log_path = tmp / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)
        self._log.close()

    def kill(self) -> None:
        """SIGKILL it (by its pid), as a crash or an OOM kill would."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def celery_env(redis_url: str, backup_dir: Path) -> dict:
    assert os.environ["DATABASE_URL"].startswith("sqlite:///")
    return dict(os.environ, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="dockweb.settings",
                DOCKWEB_CHANNEL_LAYER="memory", PYTHONPATH=str(REPO), DOCKWEB_BACKUP_DIR=str(backup_dir))


def start_worker(env: dict, queues: str, tmp: Path) -> Proc:
    proc = Proc("worker", [sys.executable, "-m", "celery", "-A", "dockweb", "worker", "--pool", "solo",
                           "--queues", queues, "--loglevel", "INFO", "--without-heartbeat", "--without-gossip",
                           "--without-mingle"], env, tmp)
    ready = wait_for(lambda: b"ready." in proc.log_path.read_bytes() or proc.proc.poll() is not None, timeout=60)
    assert ready and proc.proc.poll() is None, "the worker did not start:\n" + proc.log()
    return proc


def start_beat(env: dict, tmp: Path, max_interval: int = 5) -> Proc:
    return Proc("beat", [sys.executable, "-m", "celery", "-A", "dockweb", "beat", "--loglevel", "INFO",
                         "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                         "--pidfile", str(tmp / "beat.pid"), "--max-interval", str(max_interval)], env, tmp)


@contextmanager
def celery_pointed_at(redis_url: str) -> Iterator[None]:
    """Make this process's Celery app publish to the test's Redis (services queue jobs on commit), then put the
    app back as it was: later tests in this process read the configured broker."""
    from dockweb.celery import app

    saved = (app.conf.broker_url, app.conf.broker_write_url)

    def point(url: str | None, write_url: str | None) -> None:
        app.conf.broker_url, app.conf.broker_write_url = url, write_url
        app._pool = None
        app.amqp._producer_pool = None

    point(redis_url, redis_url)
    try:
        yield
    finally:
        point(*saved)


@contextmanager
def moto_s3() -> Iterator[str]:
    """Run moto's S3-compatible server (`moto[server]`, ThreadedMotoServer's CLI) on a free loopback port."""
    tmp = Path(tempfile.mkdtemp(prefix="dockweb-test-moto-"))
    port = free_port()
    log = open(tmp / "moto.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, proc, "moto_server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def fill(root: Path, big_mib: int = 0, marker: str = "A") -> None:
    """Put a small tree (files, a symlink, an empty dir, odd modes) and optionally big incompressible files."""
    (root / "db").mkdir(exist_ok=True)
    (root / "db" / "table.dat").write_bytes(os.urandom(200_000))
    (root / "conf.txt").write_text("listen = 5432\n")
    os.chmod(root / "conf.txt", 0o640)
    (root / "empty").mkdir(exist_ok=True)
    if not (root / "current").is_symlink():
        os.symlink("db/table.dat", root / "current")
    (root / "marker").write_text(marker)
    for i in range(big_mib // 64):
        with open(root / f"big-{i}.bin", "wb") as f:
            for _ in range(64):
                f.write(os.urandom(1 << 20))


def tree(root: Path) -> dict:
    """Describe a tree: per path its type, mode, owner, size, content hash or link target, mtime (seconds)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777, st.st_uid, st.st_gid)
            else:
                h = hashlib.sha256(p.read_bytes()).hexdigest()
                out[rel] = ("file", st.st_mode & 0o7777, st.st_uid, st.st_gid, st.st_size, h, int(st.st_mtime))
    return out
