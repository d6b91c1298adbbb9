"""Backup services against a fake engine: records, retention after success only, pre-command failures, copies to
dockweb's directory with encryption and back, restore plans and confirmations, notifications."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.unit.dockweb import backup_fakes


@pytest.fixture
def world(make_user, fake_engine, monkeypatch, tmp_path):
    from dockweb.hosts.models import Host
    from dockweb.volumes.models import Volume

    from django.conf import settings

    monkeypatch.setattr(settings, "BACKUP_DIR", tmp_path / "store")
    engine = backup_fakes.install(monkeypatch)
    olga = make_user("olga", teams={"red": "operator"})
    admin_user = make_user("rita", teams={"red": "admin"})
    admin_user.email = "rita@example.org"
    admin_user.save()
    host = Host.objects.create(name="local", engine_url="unix:///nonexistent.sock")
    red = olga.memberships.get().team
    vol = Volume.objects.create(host=host, name="pgdata", team=red)
    fake_engine.add_volume("pgdata", {"dockweb.team": "red"})
    return {"olga": olga, "host": host, "red": red, "vol": vol, "engine": engine, "api": fake_engine}


def run(job_or_jobs):
    from dockweb.backups import services
    from dockweb.core.jobs import run_job
    from dockweb.core.models import Job

    job = job_or_jobs if isinstance(job_or_jobs, Job) else job_or_jobs[0]
    kind = {"backup.run": services.run_backup_job, "backup.verify": services.run_verify_job}[job.kind]
    return run_job(job.pk, kind)


def policy(world, **extra):
    from dockweb.backups import services

    data = {"name": "nightly", "team": "red", "host": "local", "volume": "pgdata", "preset": "daily",
            "keep_last": 2, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0, **extra}
    return services.save_policy(world["olga"], data)


def test_back_up_now_records_size_files_checksum_and_verify(world):
    from dockweb.backups import services
    from dockweb.backups.models import BackupRecord
    from dockweb.core.models import AuditEntry

    job = run(services.start_backup(world["olga"], "pgdata"))
    assert job.state == "succeeded", job.error
    rec = BackupRecord.objects.get()
    assert rec.volume_name == "pgdata" and rec.team == world["red"] and rec.job_id == job.pk
    assert rec.size > 0 and rec.files == 3 and rec.checksum.startswith("sha256:") and rec.verified_ok
    assert world["engine"].calls[0] == ("create", "pgdata", "zstd", "pause", "checksum")
    assert AuditEntry.objects.filter(action="backup.create", actor_name="olga").exists()


def test_retention_runs_after_each_success_and_keeps_exactly_keep_last(world):
    from dockweb.backups import services
    from dockweb.backups.models import BackupRecord

    p = policy(world)
    for i in range(4):
        run(services.start_policy_run(world["olga"], p.pk))
        BackupRecord.objects.filter(pk=BackupRecord.objects.order_by("-pk").first().pk).update(
            created=timezone.now() - timedelta(hours=10 - i))
    kept = list(BackupRecord.objects.order_by("created"))
    assert len(kept) == 2
    assert len(world["engine"].archives) == 2            # the pruned archives are gone from the engine too
    assert {r.engine_id for r in kept} == set(world["engine"].archives)


def test_a_failed_run_deletes_nothing(world):
    from dockweb.backups import services
    from dockweb.backups.models import BackupRecord

    p = policy(world, keep_last=1)
    run(services.start_policy_run(world["olga"], p.pk))
    good = BackupRecord.objects.get()
    world["engine"].fail = "volume pgdata is busy: a backup is in progress"
    job = run(services.start_policy_run(world["olga"], p.pk))
    assert job.state == "failed" and "busy" in job.error
    assert list(BackupRecord.objects.all()) == [good] and good.engine_id in world["engine"].archives
    assert mail.outbox and "backup failed" in mail.outbox[-1].subject and "busy" in mail.outbox[-1].body
    assert mail.outbox[-1].to == ["rita@example.org"]


def test_a_failing_pre_command_fails_the_run_and_deletes_nothing(world, monkeypatch):
    from dockweb.backups import services
    from dockweb.backups.models import BackupRecord
    from dockweb.containers.models import Container

    Container.objects.create(host=world["host"], engine_id="c" * 64, name="db", team=world["red"])
    p = policy(world, keep_last=1)
    run(services.start_policy_run(world["olga"], p.pk))
    before = set(world["engine"].archives)
    p = services.save_policy(world["olga"], {"name": "nightly", "volume": "pgdata", "command_container": "db",
                                             "pre_command": "pg_dump nope"}, p)

    def failing_exec(host, container, command, what):
        raise services.EngineError(f"the {what} `{command}` in container {container} exited with 1: no such db")

    monkeypatch.setattr(services, "_exec", failing_exec)
    job = run(services.start_policy_run(world["olga"], p.pk))
    assert job.state == "failed" and "pre-command `pg_dump nope` in container db exited with 1" in job.error
    assert set(world["engine"].archives) == before and BackupRecord.objects.count() == 1
    assert [c[0] for c in world["engine"].calls].count("create") == 1   # no snapshot was taken


def test_commands_need_a_container_of_the_team(world):
    with pytest.raises(ValidationError) as e:
        policy(world, command_container="someone-elses", pre_command="true")
    assert "no such container of team red" in str(e.value.message_dict["command_container"])


def test_encrypted_copy_to_dockweb_directory_then_restore_into_a_new_volume(world, tmp_path, monkeypatch):
    from dockweb.backups import services
    from dockweb.backups.models import BackupRecord

    p = policy(world, storage="dockweb", encryption="passphrase", passphrase="correct horse battery")
    assert p.wrapped_identity and p.age_recipient.startswith("age1")
    job = run(services.start_policy_run(world["olga"], p.pk))
    assert job.state == "succeeded", job.error
    rec = BackupRecord.objects.get()
    assert rec.encrypted and rec.storage == "dockweb" and world["engine"].archives == {}  # no clear copy left
    stored = (tmp_path / "store" / rec.key).read_bytes()
    assert stored.startswith(b"age-encryption.org/v1") and b"archive of pgdata" not in stored
    assert rec.size == len(stored)

    with pytest.raises(ValidationError, match="wrong passphrase"):
        services.start_restore(world["olga"], rec.pk, "pgdata-copy", new_volume=True, secret="nope nope nope")
    job = services.start_restore(world["olga"], rec.pk, "pgdata-copy", new_volume=True,
                                 secret="correct horse battery")
    from dockweb.backups import crypto
    from dockweb.core.jobs import run_job

    sealed = crypto.seal("correct horse battery")
    job = run_job(job.pk, lambda j: services.run_restore_job(j, sealed))
    assert job.state == "succeeded", job.error
    assert world["engine"].restored["pgdata-copy"].startswith(b"archive of pgdata")
    assert world["engine"].archives == {}        # the temporary engine backup is gone again
    assert ("create_volume", "pgdata-copy", {"dockweb.team": "red"}) in world["api"].calls
    assert "correct horse" not in str(job.params)


def test_restore_into_the_same_volume_needs_its_name_and_restarts_its_users(world):
    from dockweb.backups import services
    from dockweb.core.jobs import run_job

    run(services.start_backup(world["olga"], "pgdata"))
    rec = services.list_backups(world["olga"]).get()
    cid = world["api"].add_container("db", {"dockweb.team": "red"})
    world["engine"].users["pgdata"] = [{"id": cid, "name": "db", "running": True}]
    plan = services.restore_plan(world["olga"], rec.pk)
    assert plan["exists"] and [c["name"] for c in plan["running"]] == ["db"]
    with pytest.raises(ValidationError, match="type the volume's name, pgdata"):
        services.start_restore(world["olga"], rec.pk, confirm="yes")
    job = services.start_restore(world["olga"], rec.pk, confirm="pgdata")
    job = run_job(job.pk, lambda j: services.run_restore_job(j))
    assert job.state == "succeeded", job.error
    assert ("stop", cid) in world["api"].calls and ("start", cid) in world["api"].calls
    assert world["api"].calls.index(("stop", cid)) < world["api"].calls.index(("start", cid))


def test_upload_of_the_seeds_plain_tar_becomes_a_restorable_backup(world):
    from dockweb.backups import services

    rec = services.upload_archive(world["olga"], "pgdata", iter([b"tar bytes"]), strip=1)
    assert rec.origin == "upload" and world["engine"].calls[-1] == ("upload", "pgdata", 1)


def test_an_overdue_policy_is_notified_once(world):
    from dockweb.backups import services
    from dockweb.backups.models import BackupPolicy

    p = policy(world, preset="hourly")
    BackupPolicy.objects.filter(pk=p.pk).update(created=timezone.now() - timedelta(hours=3))
    assert services.check_policies() == [p.pk]
    assert services.check_policies() == []
    assert "has not succeeded yet" in mail.outbox[-1].body


def test_the_overview_lists_volumes_with_no_policy(world):
    from dockweb.backups import services
    from dockweb.volumes.models import Volume

    Volume.objects.create(host=world["host"], name="scratch", team=world["red"])
    p = policy(world)
    view = services.overview(world["olga"])
    assert [v.name for v in view["uncovered"]] == ["scratch"]
    status = view["statuses"][0]
    assert status["policy"] == p and status["next_run"] > timezone.now() and not status["overdue"]


def test_a_label_selector_covers_the_teams_matching_volumes_new_ones_included(world):
    from dockweb.backups import services
    from dockweb.volumes.models import Volume
    from dockweb.accounts.models import Team

    blue = Team.objects.create(name="Blue", slug="blue")
    Volume.objects.create(host=world["host"], name="blue-db", team=blue, labels={"backup": "nightly"})
    Volume.objects.create(host=world["host"], name="red-db", team=world["red"], labels={"backup": "nightly"})
    Volume.objects.create(host=world["host"], name="red-tmp", team=world["red"], labels={"backup": "never"})
    p = services.save_policy(world["olga"], {"name": "by-label", "team": "red", "host": "local",
                                             "selector": "backup=nightly"})
    assert [v.name for v in services.policy_volumes(p)] == ["red-db"]       # never another team's
    Volume.objects.create(host=world["host"], name="red-db2", team=world["red"], labels={"backup": "nightly"})
    assert [v.name for v in services.policy_volumes(p)] == ["red-db", "red-db2"]
    jobs = services.start_policy_run(world["olga"], p.pk)
    assert sorted(j.target for j in jobs) == ["red-db", "red-db2"]


def test_a_failed_backup_is_posted_to_the_teams_webhook(world):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from dockweb.backups import services

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        world["red"].webhook_url = f"http://127.0.0.1:{server.server_port}/hook"
        world["red"].save()
        p = policy(world)
        world["engine"].fail = "disk full"
        job = run(services.start_policy_run(world["olga"], p.pk))
        thread.join(5)
    finally:
        server.server_close()
    assert job.state == "failed"
    assert received and received[0]["event"] == "backup failed" and received[0]["policy"] == "nightly"
    assert "disk full" in received[0]["text"] and received[0]["volume"] == "pgdata"
