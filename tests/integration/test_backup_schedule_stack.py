"""Scheduled backups through the whole stack: a real Redis, a real Celery worker and beat, the engine daemon.

A one-minute policy produces a backup through beat; a restore into a new volume is byte-identical; a failing
pre-command fails the run and deletes nothing; killing the worker mid-restore leaves the volume as it was; an
encrypted policy keeps its archives in a real S3-compatible server (moto) and restores from it; another team's
volume is invisible and its backups can be neither downloaded nor restored.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import docker.errors
import pytest

from tests.integration import backup_stack as bs
from tests.integration.polling import wait_for
from tests.unit.dockweb.support import flush_database, redis_server, setup_django

setup_django()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import Http404  # noqa: E402

from dockweb.accounts.models import Membership, Team  # noqa: E402
from dockweb.backups import services  # noqa: E402
from dockweb.backups.models import BackupRecord  # noqa: E402
from dockweb.core import client as engine_clients  # noqa: E402
from dockweb.core.models import Job  # noqa: E402
from dockweb.core.reconcile import reconcile_host  # noqa: E402
from dockweb.hosts.models import Host  # noqa: E402
from dockweb.volumes import services as volumes  # noqa: E402

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(engine):
    """Redis, a host on the test engine, users of two teams; the Celery app publishing to that Redis."""
    if connection.vendor != "sqlite":
        pytest.skip("the worker and beat share a SQLite file with this test")
    try:
        engine.client().api.volumes()
    except docker.errors.NotFound:
        pytest.skip("this engine does not serve /volumes")
    tmp = Path(tempfile.mkdtemp(prefix="dockweb-test-backups-"))
    with redis_server() as redis_url, bs.celery_pointed_at(redis_url):
        host = Host.objects.create(name="bk", engine_url=engine.base_url)
        User = get_user_model()
        red, blue = Team.objects.create(name="Red", slug="red"), Team.objects.create(name="Blue", slug="blue")
        olga, bob = User.objects.create_user("olga"), User.objects.create_user("bob")
        Membership.objects.create(user=olga, team=red, role="operator")
        Membership.objects.create(user=bob, team=blue, role="admin")
        env = bs.celery_env(redis_url, tmp / "store")
        try:
            yield {"host": host, "olga": olga, "bob": bob, "env": env, "tmp": tmp, "queues": f"dockweb,{host.queue}"}
        finally:
            client = engine.client()
            for c in client.containers.list(all=True):
                c.remove(force=True)
            for v in client.volumes.list():
                v.remove(force=True)
            engine_clients.close_clients()
            flush_database()
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def worker(stack):
    proc = bs.start_worker(stack["env"], stack["queues"], stack["tmp"])
    try:
        yield proc
    finally:
        proc.stop()


def data_dir(engine, name: str) -> Path:
    return engine.root / "volumes" / name / "_data"


def finished(job: Job, proc: bs.Proc, timeout: float = 120) -> Job:
    done = wait_for(lambda: Job.objects.get(pk=job.pk).done, timeout=timeout, interval=0.1)
    assert done, f"job {job.pk} is still {Job.objects.get(pk=job.pk).state}; {proc.name} log:\n{proc.log()}"
    return Job.objects.get(pk=job.pk)


def red_volume(stack, engine, name: str, **fill) -> Path:
    volumes.create_volume(stack["olga"], name, "red", "bk")
    root = data_dir(engine, name)
    bs.fill(root, **fill)
    return root


def test_a_one_minute_policy_produces_a_backup_through_beat(stack, engine, worker):
    root = red_volume(stack, engine, "minutely-data")
    policy = services.save_policy(stack["olga"], {"name": "every-minute", "team": "red", "host": "bk",
                                                  "volume": "minutely-data", "preset": "custom", "cron": "* * * * *",
                                                  "keep_last": 5})
    beat = bs.start_beat(stack["env"], stack["tmp"])
    try:
        # Beat fires at the next minute boundary: at most ~60 s, plus its 5 s loop and the backup itself.
        made = wait_for(lambda: BackupRecord.objects.filter(policy=policy).exists(), timeout=100, interval=0.5)
        assert made, f"no backup after 100 s\nbeat:\n{beat.log()}\nworker:\n{worker.log()}"
    finally:
        beat.stop()
    rec = BackupRecord.objects.get(policy=policy)
    job = rec.job
    assert job.params["scheduled"] is True and job.user is None and job.state == "succeeded"
    assert rec.verified_ok and rec.files >= 6 and rec.size > 200_000
    engine_doc = engine.client().api._result(engine.client().api._get(
        engine.client().api._url("/dockweb/backups/{0}", rec.engine_id)), json=True)
    assert engine_doc["Volume"] == "minutely-data" and engine_doc["Checksums"]["Archive"] == rec.checksum
    # The record's duration is the whole run's, so it covers the engine's own backup time (values are the bench's).
    assert rec.duration >= engine_doc["Duration"]
    assert engine_doc["Verified"]["Ok"] and root.exists()


def test_restore_into_a_new_volume_is_byte_identical(stack, engine, worker):
    root = red_volume(stack, engine, "source-data", big_mib=64)
    job = finished(services.start_backup(stack["olga"], "source-data"), worker)
    assert job.state == "succeeded", job.error
    rec = BackupRecord.objects.get(job=job)
    job = finished(services.start_restore(stack["olga"], rec.pk, "source-copy", new_volume=True), worker)
    assert job.state == "succeeded", job.error + worker.log()
    assert bs.tree(data_dir(engine, "source-copy")) == bs.tree(root)
    inspect = engine.client().api.inspect_volume("source-copy")
    assert inspect["Labels"]["dockweb.team"] == "red"       # the new volume is the team's


def test_a_failing_pre_command_fails_the_run_and_deletes_nothing(stack, engine, worker):
    red_volume(stack, engine, "guarded-data")
    cid = engine.client().api.create_container("busybox", ["sleep", "300"], name="guarded-db",
                                               labels={"dockweb.team": "red"})["Id"]
    engine.client().api.start(cid)
    reconcile_host(stack["host"])
    policy = services.save_policy(stack["olga"], {"name": "guarded", "team": "red", "host": "bk",
                                                  "volume": "guarded-data", "keep_last": 1})
    job = finished(services.start_policy_run(stack["olga"], policy.pk)[0], worker)
    assert job.state == "succeeded", job.error
    good = BackupRecord.objects.get(policy=policy)
    services.save_policy(stack["olga"], {"name": "guarded", "volume": "guarded-data", "command_container":
                                         "guarded-db", "pre_command": "echo dumping; exit 3"}, policy)
    job = finished(services.start_policy_run(stack["olga"], policy.pk)[0], worker)
    assert job.state == "failed"
    assert "pre-command `echo dumping; exit 3` in container guarded-db exited with 3: dumping" in job.error
    assert list(BackupRecord.objects.filter(policy=policy)) == [good]
    backups = engine.client().api._result(engine.client().api._get(
        engine.client().api._url("/dockweb/volumes/{0}/backups", "guarded-data")), json=True)
    assert [b["Id"] for b in backups] == [good.engine_id]     # no new archive, the old one untouched
    assert engine.client().api.inspect_container(cid)["State"]["Status"] == "running"


def test_an_interrupted_restore_leaves_the_volume_as_it_was(stack, engine):
    root = red_volume(stack, engine, "precious-data", big_mib=768, marker="A")
    proc = bs.start_worker(stack["env"], stack["queues"], stack["tmp"])
    try:
        job = finished(services.start_backup(stack["olga"], "precious-data"), proc, timeout=300)
        assert job.state == "succeeded", job.error
        rec = BackupRecord.objects.get(job=job)
        (root / "marker").write_text("B")          # what the volume holds now, and must still hold
        before = bs.tree(root)
        job = services.start_restore(stack["olga"], rec.pk, confirm="precious-data")
        restoring = wait_for(lambda: Job.objects.get(pk=job.pk).progress > 0.1, timeout=120, interval=0.05)
        assert restoring, f"the restore never got going: {Job.objects.get(pk=job.pk).state}\n{proc.log()}"
    finally:
        proc.kill()
    assert Job.objects.get(pk=job.pk).progress < 0.9, "the restore finished before the worker was killed"
    # The engine notices its client is gone, stops the restore and drops its staging directory.
    staging = root.parent
    gone = wait_for(lambda: not list(staging.glob("._data.staging-*")), timeout=30, interval=0.2)
    assert gone, f"staging left behind: {list(staging.iterdir())}"
    assert bs.tree(root) == before and (root / "marker").read_text() == "B"


def test_an_encrypted_policy_keeps_its_archives_in_s3_and_restores_from_there(stack, engine, worker):
    import boto3
    from pyrage import x25519

    with bs.moto_s3() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
        s3.create_bucket(Bucket="dockweb-backups")
        admin = get_user_model().objects.create_user("rita")
        Membership.objects.create(user=admin, team=Team.objects.get(slug="red"), role="admin")
        target = services.save_s3_target(admin, "red", {"name": "moto", "endpoint_url": endpoint,
                                                        "bucket": "dockweb-backups", "prefix": "team-red",
                                                        "access_key": "test", "secret_key": "test"})
        assert "test" not in target.secret_key_sealed
        identity = x25519.Identity.generate()
        root = red_volume(stack, engine, "s3-data", big_mib=64)
        policy = services.save_policy(stack["olga"], {
            "name": "offsite", "team": "red", "host": "bk", "volume": "s3-data", "storage": "s3",
            "s3_target": str(target.pk), "encryption": "age", "age_recipient": str(identity.to_public()),
            "keep_last": 1})
        job = finished(services.start_policy_run(stack["olga"], policy.pk)[0], worker)
        assert job.state == "succeeded", job.error + worker.log()
        rec = BackupRecord.objects.get(policy=policy)
        assert rec.storage == "s3" and rec.encrypted and rec.key.endswith(".tar.zst.age")
        body = s3.get_object(Bucket="dockweb-backups", Key=f"team-red/{rec.key}")["Body"].read()
        assert body.startswith(b"age-encryption.org/v1") and len(body) == rec.size
        with pytest.raises(docker.errors.NotFound):     # no clear copy stays in the engine's store
            engine.client().api._raise_for_status(engine.client().api._get(
                engine.client().api._url("/dockweb/backups/{0}", rec.engine_id)))

        job = finished(services.start_verify(stack["olga"], rec.pk), worker)
        assert job.state == "succeeded" and "sha256 matches" in job.message

        job = finished(services.start_restore(stack["olga"], rec.pk, "s3-copy", new_volume=True,
                                              secret=str(identity)), worker)
        assert job.state == "succeeded", job.error + worker.log()
        assert bs.tree(data_dir(engine, "s3-copy")) == bs.tree(root)

        # A second run: retention (keep_last 1) removes the first object from the bucket.
        job = finished(services.start_policy_run(stack["olga"], policy.pk)[0], worker)
        assert job.state == "succeeded", job.error
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="dockweb-backups").get("Contents", [])]
        newest = BackupRecord.objects.get(policy=policy)
        assert keys == [f"team-red/{newest.key}"] and newest.pk != rec.pk


def test_another_teams_volume_is_invisible_and_its_backups_cannot_be_downloaded_or_restored(stack, engine, worker):
    red_volume(stack, engine, "red-secret")
    job = finished(services.start_backup(stack["olga"], "red-secret"), worker)
    rec = BackupRecord.objects.get(job=job)
    bob = stack["bob"]
    assert "red-secret" not in [v.name for v in volumes.list_volumes(bob)]
    assert rec not in services.list_backups(bob)
    for attempt in (lambda: volumes.get_volume(bob, "red-secret"),
                    lambda: services.start_backup(bob, "red-secret"),
                    lambda: services.download(bob, rec.pk),
                    lambda: services.start_restore(bob, rec.pk, "stolen", new_volume=True),
                    lambda: services.start_verify(bob, rec.pk),
                    lambda: services.delete_backup(bob, rec.pk)):
        with pytest.raises(Http404):
            attempt()
    assert not Job.objects.filter(kind="backup.restore", target="stolen").exists()
    time.sleep(0.5)
    assert "stolen" not in [v.name for v in engine.client().volumes.list()]
