"""Backup verbs: policies (and their beat entries), back up, verify, restore, download, upload, retention, overview.

Every verb checks the user's role on the object first (another team's volume or backup answers 404); scheduled
runs act for the policy's team. Long verbs are Jobs: start_* creates the job and queues its task on the host's
queue, run_*_job is the task's work. Every change writes an audit entry.
"""

from __future__ import annotations

import logging
import time
from typing import Iterator

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from dockweb.accounts.models import Team
from dockweb.accounts.permissions import can, get_for_user, is_site_admin, team_for_user, visible
from dockweb.backups import crypto, engine_api, notifications, schedule
from dockweb.backups.models import BackupPolicy, BackupRecord, S3Target
from dockweb.backups.retention import Retention, to_delete
from dockweb.backups.storage import StorageError, store_for
from dockweb.core import client
from dockweb.core.audit import record
from dockweb.core.errors import EngineError, EngineNotFound
from dockweb.core.jobs import create_job, run_job
from dockweb.core.models import Job
from dockweb.hosts.models import Host
from dockweb.volumes import services as volumes
from dockweb.volumes.models import Volume

log = logging.getLogger("dockweb.backups")

COMPRESSIONS = ("zstd", "gzip", "none")
DEFAULTS = {"compression": "zstd", "consistency": "pause", "verify": "checksum"}


# -- policies ----------------------------------------------------------------------------------------------------

def list_policies(user) -> QuerySet:
    return visible(BackupPolicy, user).select_related("team", "host", "volume", "s3_target")


def get_policy(user, ref, action: str = "view", audit: str | None = None) -> BackupPolicy:
    return get_for_user(BackupPolicy, user, ref, action, audit=audit)


def _selector_matches(selector: str, labels: dict) -> bool:
    key, sep, value = selector.partition("=")
    return key in (labels or {}) and (not sep or labels[key] == value)


def policy_volumes(policy: BackupPolicy) -> list[Volume]:
    """Return the volumes the policy covers now: its volume, or the team's volumes on its host the selector matches."""
    qs = Volume.objects.filter(host=policy.host, team=policy.team).select_related("host", "team")
    if not policy.selector:
        return list(qs.filter(name=policy.volume_name))
    return [v for v in qs.order_by("name") if _selector_matches(policy.selector, v.labels)]


def save_policy(user, data: dict, policy: BackupPolicy | None = None) -> BackupPolicy:
    """Create or update a policy from form/API data (operators of its team), then its beat entry.

    data: name, team, host, volume or selector, preset, cron, keep_*, compression, consistency, verify,
    pre_command, post_command, command_container, storage, s3_target, encryption, passphrase, age_recipient,
    enabled.
    """
    creating = policy is None
    if creating:
        team = team_for_user(user, data.get("team") or "", "operate")
        if team is None:
            raise ValidationError({"team": ["a backup policy belongs to a team: pick one"]})
        host = get_for_user(Host, user, data["host"], "view") if data.get("host") else Host.default()
        policy = BackupPolicy(team=team, host=host)
    else:
        policy = get_policy(user, policy.pk, "operate", audit="backup_policy.update")
    errors: dict[str, list[str]] = {}
    policy.name = (data.get("name") or "").strip()
    if not policy.name:
        errors["name"] = ["give the policy a name"]
    volume_ref, selector = (data.get("volume") or "").strip(), (data.get("selector") or "").strip()
    if bool(volume_ref) == bool(selector):
        errors["volume"] = ["choose either one volume or a label selector (key or key=value)"]
    elif volume_ref:
        vol = Volume.lookup(visible(Volume, user), volume_ref, host=policy.host)
        if vol is None or vol.team_id != policy.team_id:
            errors["volume"] = [f"{volume_ref}: no such volume of team {policy.team.slug} on host {policy.host.name}"]
        else:
            policy.volume, policy.volume_name, policy.selector = vol, vol.name, ""
    else:
        policy.volume, policy.volume_name, policy.selector = None, "", selector
    for field in ("preset", "cron", "compression", "consistency", "verify", "pre_command", "post_command",
                  "command_container", "storage"):
        if field in data and data[field] is not None:
            setattr(policy, field, str(data[field]).strip())
    for field in ("keep_last", "keep_daily", "keep_weekly", "keep_monthly"):
        if data.get(field) not in (None, ""):
            try:
                value = int(data[field])
                if value < 0:
                    raise ValueError
                setattr(policy, field, value)
            except (TypeError, ValueError):
                errors[field] = ["a whole number, 0 or more"]
    if "enabled" in data:
        policy.enabled = bool(data["enabled"])
    if policy.compression not in COMPRESSIONS:
        errors["compression"] = ["use zstd, gzip or none"]
    if policy.consistency not in BackupPolicy.Consistency.values:
        errors["consistency"] = ["use pause, stop or none"]
    if policy.verify not in ("checksum", "full"):
        errors["verify"] = ["use checksum or full"]
    try:
        schedule.cron_fields(policy.preset, policy.cron)
    except ValidationError as e:
        errors.update(e.message_dict)
    if (policy.pre_command or policy.post_command) and not policy.command_container:
        errors["command_container"] = ["name the container the pre/post commands run in"]
    elif policy.command_container and not _team_container(policy, policy.command_container):
        errors["command_container"] = [f"{policy.command_container}: no such container of team "
                                       f"{policy.team.slug} on host {policy.host.name}"]
    _set_storage(user, policy, data, errors)
    _set_encryption(policy, data, creating, errors)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        policy.save()
        schedule.sync_periodic_task(policy)
    record("backup_policy.create" if creating else "backup_policy.update", actor=user, obj=policy,
           message=f"{policy.covers}, {policy.preset} {policy.cron}".strip())
    return policy


def _team_container(policy: BackupPolicy, name: str):
    from dockweb.containers.models import Container

    return Container.objects.filter(host=policy.host, team=policy.team).filter(
        Q(name=name) | Q(engine_id__startswith=name)).first() if name else None


def _set_storage(user, policy: BackupPolicy, data: dict, errors: dict) -> None:
    if policy.storage not in BackupPolicy.Storage.values:
        errors["storage"] = ["use engine, dockweb or s3"]
        return
    if policy.storage != "s3":
        policy.s3_target = None
        return
    ref = data.get("s3_target")
    target = S3Target.lookup(visible(S3Target, user), str(ref)) if ref else policy.s3_target
    if target is None or target.team_id != policy.team_id:
        errors["s3_target"] = [f"choose one of team {policy.team.slug}'s S3 targets"]
    else:
        policy.s3_target = target


def _set_encryption(policy: BackupPolicy, data: dict, creating: bool, errors: dict) -> None:
    mode = (data.get("encryption") or policy.encryption or "none").strip()
    if mode not in BackupPolicy.Encryption.values:
        errors["encryption"] = ["use none, passphrase or age"]
        return
    if mode != "none" and policy.storage == "engine":
        errors["encryption"] = ["the engine's store keeps archives as the engine writes them: choose dockweb's "
                                "backup directory or an S3 target to encrypt"]
        return
    phrase = data.get("passphrase") or ""
    try:
        if mode == "none":
            policy.age_recipient, policy.wrapped_identity = "", ""
        elif mode == "age":
            text = (data.get("age_recipient") or policy.age_recipient or "").strip()
            crypto.recipient_of(text)
            policy.age_recipient, policy.wrapped_identity = text, ""
        elif phrase or policy.encryption != "passphrase" or not policy.wrapped_identity:
            # A new passphrase means a new identity: older backups keep theirs (and their old passphrase).
            policy.age_recipient, policy.wrapped_identity = crypto.new_passphrase_identity(phrase)
    except ValidationError as e:
        errors.update(e.message_dict)
    policy.encryption = mode


def delete_policy(user, ref) -> None:
    """Delete a policy and its beat entry; its backups stay (they are listed under their volume)."""
    policy = get_policy(user, ref, "operate", audit="backup_policy.delete")
    with transaction.atomic():
        schedule.delete_periodic_task(policy)
        record("backup_policy.delete", actor=user, obj=policy)
        policy.delete()


def reschedule_team(team: Team) -> None:
    """Rewrite the beat entries of the team's policies (after its timezone changed)."""
    for policy in BackupPolicy.objects.filter(team=team).select_related("team", "host"):
        schedule.sync_periodic_task(policy)


def update_team_settings(user, slug: str, tz_name: str, webhook_url: str) -> Team:
    """Set the team's timezone (its schedules move with it) and alert webhook (team admins)."""
    team = get_for_user(Team, user, slug, "admin", audit="team.backup_settings")
    schedule.zone(tz_name)
    if webhook_url and not webhook_url.startswith(("http://", "https://")):
        raise ValidationError({"webhook_url": ["an http:// or https:// URL"]})
    with transaction.atomic():
        team.timezone, team.webhook_url = tz_name, webhook_url
        team.save(update_fields=["timezone", "webhook_url"])
        reschedule_team(team)
    record("team.backup_settings", actor=user, obj=team, message=f"timezone {tz_name}")
    return team


# -- S3 targets --------------------------------------------------------------------------------------------------

def save_s3_target(user, team_slug: str, data: dict) -> S3Target:
    """Add an S3-compatible target for a team (its admins); the secret key is sealed, never stored in clear."""
    team = team_for_user(user, team_slug, "admin")
    if team is None:
        raise ValidationError({"team": ["an S3 target belongs to a team: pick one"]})
    missing = [f for f in ("name", "bucket", "access_key", "secret_key") if not (data.get(f) or "").strip()]
    if missing:
        raise ValidationError({f: ["required"] for f in missing})
    target = S3Target(team=team, name=data["name"].strip(), endpoint_url=(data.get("endpoint_url") or "").strip(),
                      region=(data.get("region") or "us-east-1").strip(), bucket=data["bucket"].strip(),
                      prefix=(data.get("prefix") or "").strip().strip("/"), access_key=data["access_key"].strip(),
                      secret_key_sealed=crypto.seal(data["secret_key"].strip()))
    target.save()
    record("s3target.create", actor=user, obj=target, message=f"s3://{target.bucket}/{target.prefix}")
    return target


def delete_s3_target(user, ref) -> None:
    target = get_for_user(S3Target, user, ref, "admin", audit="s3target.delete")
    if target.policies.exists() or target.backups.exists():
        raise ValidationError({"s3_target": [f"S3 target {target.name} is used by policies or backups: "
                                             "change or delete them first"]})
    record("s3target.delete", actor=user, obj=target)
    target.delete()


# -- backups -----------------------------------------------------------------------------------------------------

def list_backups(user, volume: Volume | None = None) -> QuerySet:
    qs = visible(BackupRecord, user).select_related("host", "team", "policy", "job", "volume")
    if volume is not None:
        qs = qs.filter(host=volume.host, volume_name=volume.name)
    return qs


def get_backup(user, ref, action: str = "view", audit: str | None = None) -> BackupRecord:
    return get_for_user(BackupRecord, user, ref, action, audit=audit)


def _enqueue(job: Job, task, **kwargs) -> Job:
    """Send task(job.id, **kwargs) to the job's host queue once the job row is committed."""
    transaction.on_commit(lambda: task.apply_async(args=[job.pk], kwargs=kwargs, queue=job.host.queue))
    return job


def start_backup(user, volume_ref: str, host: Host | None = None, policy: BackupPolicy | None = None) -> Job:
    """Queue a backup of one volume ("back up now"): with the policy's settings when given, else the defaults."""
    from dockweb.backups import tasks

    vol = volumes.get_volume(user, volume_ref, "operate", host)
    if policy is None and vol.team_id:
        # The volume's own policy, if it has one, says how (compression, storage, commands, retention).
        policy = BackupPolicy.objects.filter(host=vol.host, team=vol.team, volume_name=vol.name).first()
    job = create_job(user, "backup.run", host=vol.host, team=vol.team, target=vol.name,
                     params={"volume": vol.name, "policy": policy.pk if policy else None, "scheduled": False})
    return _enqueue(job, tasks.run_backup)


def start_policy_run(user, ref) -> list[Job]:
    """Queue a backup of every volume the policy covers ("run now")."""
    from dockweb.backups import tasks

    policy = get_policy(user, ref, "operate", audit="backup_policy.run")
    jobs = [create_job(user, "backup.run", host=policy.host, team=policy.team, target=v.name,
                       params={"volume": v.name, "policy": policy.pk, "scheduled": False})
            for v in policy_volumes(policy)]
    if not jobs:
        raise ValidationError({"volume": [f"policy {policy.name} covers no volume now"]})
    return [_enqueue(job, tasks.run_backup) for job in jobs]


def run_policy(policy_id: int) -> list[Job]:
    """Beat's entry point: back up each volume the policy covers, one job each, in this worker, one by one."""
    policy = BackupPolicy.objects.select_related("team", "host").filter(pk=policy_id).first()
    if policy is None or not policy.enabled:
        return []
    done = []
    for vol in policy_volumes(policy):
        job = create_job(None, "backup.run", host=policy.host, team=policy.team, target=vol.name,
                         params={"volume": vol.name, "policy": policy.pk, "scheduled": True})
        done.append(run_job(job.pk, run_backup_job))
    return done


class _JobProgress:
    """Turn the engine's (bytes, total, files) into job progress between two fractions, at most 4 times a second."""

    def __init__(self, job: Job, start: float, end: float, what: str) -> None:
        self.job, self.start, self.end, self.what = job, start, end, what
        self.last = 0.0

    def __call__(self, current: int, total: int, files: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        fraction = current / total if total else 0.0
        self.job.set_progress(self.start + (self.end - self.start) * min(fraction, 1.0),
                              f"{self.what}: {_size(current)} of {_size(total)}, {files} files")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _exec(host: Host, container: str, command: str, what: str) -> str:
    """Run `sh -c command` in the container; EngineError with its output when it exits non-zero."""
    api = client.engine_client(host).api
    with client.calling(host, f"running the {what} in container {container}"):
        exec_id = api.exec_create(container, ["sh", "-c", command])["Id"]
        output = api.exec_start(exec_id).decode(errors="replace")
        code = api.exec_inspect(exec_id).get("ExitCode")
    if code != 0:
        tail = output.strip()[-500:]
        raise EngineError(f"the {what} `{command}` in container {container} exited with {code}"
                          + (f": {tail}" if tail else ""))
    return output


def run_backup_job(job: Job) -> str:
    """The backup task's work: pre-command, engine backup, copy to the policy's store, post-command, retention."""
    params = job.params
    policy = BackupPolicy.objects.select_related("team", "host", "s3_target").filter(pk=params.get("policy")).first()
    if params.get("scheduled"):
        if policy is None:
            raise EngineError("the policy of this scheduled backup was deleted")
        vol = Volume.objects.filter(host=job.host, name=params["volume"], team=policy.team).first()
        if vol is None:
            raise EngineError(f"volume {params['volume']} is no longer team {policy.team.slug}'s on {job.host.name}")
    else:
        vol = volumes.get_volume(job.user, params["volume"], "operate", job.host)  # the role may have changed
    try:
        return _back_up(job, vol, policy)
    except Exception as e:
        if policy is not None:
            message = e.message if isinstance(e, EngineError) else str(e)
            notifications.notify(policy.team, "backup failed", f"The backup of volume {vol.name} by policy "
                                 f"{policy.name} failed: {message}", policy=policy, job=job, volume=vol.name)
        raise


def _back_up(job: Job, vol: Volume, policy: BackupPolicy | None) -> str:
    opts = {k: getattr(policy, k) if policy else v for k, v in DEFAULTS.items()}
    storage = policy.storage if policy else "engine"
    if policy and policy.pre_command:
        job.set_progress(0.0, f"pre-command in {policy.command_container}")
        out = _exec(job.host, policy.command_container, policy.pre_command, "pre-command")
        job.append_log(f"pre-command ok: {out.strip()[-300:]}")
    started = time.monotonic()
    end = 0.95 if storage == "engine" else 0.6
    doc = engine_api.create_backup(job.host, vol.name, compression=opts["compression"],
                                   consistency=opts["consistency"], verify=opts["verify"],
                                   progress=_JobProgress(job, 0.02, end, f"backing up {vol.name}"))
    job.append_log(f"engine backup {doc['Id'][:12]}: {doc['Files']} files, {_size(doc['Size'])} archive, "
                   f"verify: {doc['Verified'].get('Message', '')}")
    rec = BackupRecord(team=vol.team, host=job.host, volume=vol, volume_name=vol.name, policy=policy, job=job,
                       storage=storage, engine_id=doc["Id"], compression=doc["Compression"], size=doc["Size"],
                       data_bytes=doc["Bytes"], files=doc["Files"], checksum=doc["Checksums"]["Archive"],
                       stored_checksum=doc["Checksums"]["Archive"],
                       verified_ok=bool(doc["Verified"].get("Ok")), verify_message=doc["Verified"].get("Message", ""),
                       verified_at=timezone.now())
    if storage != "engine":
        _copy_out(job, rec, policy)
    rec.duration = time.monotonic() - started
    rec.save()
    record("backup.create", actor=job.user, obj=rec, actor_name="" if job.user else "scheduler",
           message=f"{rec.files} files, {_size(rec.size)}, {storage}")
    if policy is not None:
        BackupPolicy.objects.filter(pk=policy.pk).update(last_success=timezone.now(), overdue_notified=None)
        if policy.post_command:
            job.set_progress(0.96, f"post-command in {policy.command_container}")
            out = _exec(job.host, policy.command_container, policy.post_command, "post-command")
            job.append_log(f"post-command ok: {out.strip()[-300:]}")
        pruned = apply_retention(policy, vol.name)
        if pruned:
            job.append_log(f"retention removed {len(pruned)} older backup(s): " + ", ".join(map(str, pruned)))
    return f"backed up {vol.name}: {rec.files} files, {_size(rec.size)} in {rec.duration:.1f} s"


def _copy_out(job: Job, rec: BackupRecord, policy: BackupPolicy) -> None:
    """Stream the engine's archive to the policy's store (encrypted on the way), check it, drop the engine's copy."""
    store = store_for(rec.storage, policy.s3_target)
    rec.s3_target = policy.s3_target
    rec.encryption = policy.encryption
    rec.wrapped_identity = policy.wrapped_identity
    rec.key = f"{rec.team.slug if rec.team else '_'}/{rec.volume_name}/{rec.engine_id}{_ext(rec)}"
    job.set_progress(0.6, f"copying to {rec.get_storage_display()}")
    try:
        progress = _JobProgress(job, 0.6, 0.95, "copying")
        with engine_api.download(rec.host, rec.engine_id) as (raw, headers):
            plain = _Checked(raw, rec.size)
            if rec.encrypted:
                # The encrypting thread only reads and writes bytes; progress (a database write) stays here.
                with crypto.piped(lambda w: crypto.encrypt_stream(plain, w, policy.age_recipient)) as src:
                    rec.size, rec.stored_checksum = store.put(rec.key, _Checked(src, rec.size, progress))
            else:
                rec.size, rec.stored_checksum = store.put(rec.key, _Checked(plain, rec.size, progress))
        if plain.digest != rec.checksum:
            store.delete(rec.key)
            raise StorageError(f"the archive read from the engine (sha256 {plain.digest[7:19]}) differs from the "
                               f"one it verified ({rec.checksum[7:19]}): nothing was kept")
    finally:
        # The store's copy is the backup: the engine's (in clear, on the host) goes either way.
        try:
            engine_api.delete_backup(rec.host, rec.engine_id)
        except EngineError as e:
            log.warning("could not remove engine backup %s after copying it out: %s", rec.engine_id, e.message)
    rec.verify_message += f"; copied to {rec.get_storage_display()}, archive sha256 matched"
    job.append_log(f"stored {rec.key} ({_size(rec.size)}{', encrypted' if rec.encrypted else ''})")


def _ext(rec: BackupRecord) -> str:
    return {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}[rec.compression] + (".age" if rec.encrypted else "")


class _Checked:
    """A reader that hashes what passes (sha256) and, given a progress, reports it (from the reading thread only:
    it writes the job row)."""

    def __init__(self, raw, total: int, progress: _JobProgress | None = None) -> None:
        import hashlib

        self.raw, self.sha, self.done = raw, hashlib.sha256(), 0
        self.progress = progress
        self.total = total

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n and n > 0 else 1 << 20)
        self.sha.update(data)
        self.done += len(data)
        if self.progress is not None:
            self.progress(self.done, self.total, 0)
        return data

    def readable(self) -> bool:
        return True

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def _remove_archive(rec: BackupRecord) -> None:
    if rec.storage == "engine":
        try:
            engine_api.delete_backup(rec.host, rec.engine_id)
        except EngineNotFound:
            pass
    else:
        store_for(rec.storage, rec.s3_target).delete(rec.key)


def apply_retention(policy: BackupPolicy, volume_name: str) -> list[int]:
    """Delete the policy's backups of the volume that its retention lets go; return their ids.

    Only good (verified) backups count and only they are pruned: a failed or unverified one is never what a
    restore relies on, and it is left for a person to look at.
    """
    good = BackupRecord.objects.filter(policy=policy, volume_name=volume_name, host=policy.host, verified_ok=True)
    rules = Retention(policy.keep_last, policy.keep_daily, policy.keep_weekly, policy.keep_monthly)
    doomed = to_delete([(r.pk, r.created) for r in good], rules, schedule.zone(policy.team.timezone))
    removed = []
    for rec in BackupRecord.objects.filter(pk__in=doomed).select_related("host", "team", "s3_target"):
        try:
            _remove_archive(rec)
        except EngineError as e:
            log.warning("retention could not remove backup %s: %s", rec.pk, e.message)
            continue
        record("backup.prune", obj=rec, actor_name="retention", message=f"policy {policy.name}")
        rec.delete()
        removed.append(rec.pk)
    return removed


def delete_backup(user, ref) -> None:
    rec = get_backup(user, ref, "operate", audit="backup.delete")
    try:
        _remove_archive(rec)
    except EngineError as e:
        record("backup.delete", actor=user, obj=rec, result="failed", message=e.message)
        raise
    record("backup.delete", actor=user, obj=rec)
    rec.delete()


# -- verify ------------------------------------------------------------------------------------------------------

def start_verify(user, ref) -> Job:
    from dockweb.backups import tasks

    rec = get_backup(user, ref, "operate", audit="backup.verify")
    job = create_job(user, "backup.verify", host=rec.host, team=rec.team, target=rec.volume_name,
                     params={"backup": rec.pk})
    return _enqueue(job, tasks.verify_backup)


def run_verify_job(job: Job) -> str:
    rec = get_backup(job.user, job.params["backup"], "operate") if job.user else \
        BackupRecord.objects.get(pk=job.params["backup"])
    if rec.storage == "engine":
        doc = engine_api.verify_backup(rec.host, rec.engine_id, _JobProgress(job, 0, 0.99, "verifying"))
        ok, message = bool(doc["Verified"].get("Ok")), doc["Verified"].get("Message", "")
    else:
        with store_for(rec.storage, rec.s3_target).open(rec.key) as raw:
            reader = _Checked(raw, rec.size, _JobProgress(job, 0, 0.99, "verifying"))
            while reader.read(1 << 20):
                pass
        ok = reader.digest == rec.stored_checksum
        message = (f"read back {_size(reader.done)}, sha256 matches" if ok else
                   f"the stored archive's sha256 {reader.digest[7:19]} differs from {rec.stored_checksum[7:19]}")
    BackupRecord.objects.filter(pk=rec.pk).update(verified_ok=ok, verify_message=message, verified_at=timezone.now())
    record("backup.verify", actor=job.user, obj=rec, result="ok" if ok else "failed", message=message)
    if not ok:
        notifications.notify(rec.team, "backup verify failed", f"Backup {rec.pk} of volume {rec.volume_name} "
                             f"failed verification: {message}", policy=rec.policy, job=job, volume=rec.volume_name)
        raise EngineError(f"verification failed: {message}")
    return f"verified: {message}"


# -- restore -----------------------------------------------------------------------------------------------------

def restore_plan(user, ref, target: str = "") -> dict:
    """Say what a restore of the backup into target (default: its own volume) would replace and stop."""
    rec = get_backup(user, ref, "operate")
    name = target or rec.volume_name
    existing = Volume.lookup(visible(Volume, user), name, host=rec.host)
    users = engine_api.containers_using(rec.host, name) if existing else []
    return {"backup": rec, "volume": name, "exists": existing is not None,
            "running": [c for c in users if c["running"]], "users": users}


def start_restore(user, ref, target: str = "", *, new_volume: bool = False, confirm: str = "",
                  secret: str = "") -> Job:
    """Queue a restore of the backup: into its volume (or another existing one), or into a new volume.

    Replacing a volume's contents needs confirm == the volume's name. The secret of an encrypted backup is
    checked here, then travels to the worker sealed in the task message (never in the job row).
    """
    from dockweb.backups import tasks

    rec = get_backup(user, ref, "operate", audit="backup.restore")
    name = (target or "").strip() or rec.volume_name
    if new_volume:
        if not volumes.NAME_RE.match(name):
            raise ValidationError({"volume": [f"{name!r}: a volume name is 2+ of letters, digits, _ . - "
                                              "and starts with a letter or digit"]})
        if Volume.objects.filter(host=rec.host, name=name).exists():
            raise ValidationError({"volume": [f"volume {name} exists already: restore into it, or pick a new name"]})
        team = team_for_user(user, rec.team.slug if rec.team else "", "operate")
    else:
        vol = volumes.get_volume(user, name, "operate", rec.host)
        if confirm.strip() != vol.name:
            raise ValidationError({"confirm": [f"type the volume's name, {vol.name}, to replace its contents"]})
        team = vol.team
    if rec.encrypted:
        crypto.identity_for(rec.encryption, rec.wrapped_identity, secret)   # a wrong key fails now, not later
    job = create_job(user, "backup.restore", host=rec.host, team=team, target=name,
                     params={"backup": rec.pk, "volume": name, "new": bool(new_volume)})
    return _enqueue(job, tasks.restore_backup, sealed_secret=crypto.seal(secret) if secret else "")


def run_restore_job(job: Job, sealed_secret: str = "") -> str:
    """The restore task's work: make the target (new) or stop its users (existing), restore, start them again."""
    params = job.params
    rec = get_backup(job.user, params["backup"], "operate")
    name = params["volume"]
    identity = None
    if rec.encrypted:
        identity = crypto.identity_for(rec.encryption, rec.wrapped_identity,
                                       crypto.unseal(sealed_secret) if sealed_secret else "")
    created = None
    stopped: list[dict] = []
    if params.get("new"):
        created = volumes.create_volume(job.user, name, rec.team.slug if rec.team else "", rec.host.name)
        job.append_log(f"created volume {name}")
    else:
        vol = volumes.get_volume(job.user, name, "operate", rec.host)
        api = client.engine_client(rec.host).api
        for c in engine_api.containers_using(rec.host, vol.name):
            if c["running"]:
                with client.calling(rec.host, f"stopping container {c['name']}"):
                    api.stop(c["id"])
                stopped.append(c)
                job.append_log(f"stopped container {c['name']}")
    try:
        result = _restore_into(job, rec, name, identity)
    except BaseException:
        if created is not None:
            try:
                volumes.remove_volume(job.user, name, force=True)
            except EngineError as e:
                log.warning("could not remove volume %s made for a failed restore: %s", name, e.message)
        raise
    finally:
        _start_again(job, rec.host, stopped)
    volumes.sync_volume(rec.host, name)
    record("backup.restore", actor=job.user, obj=rec, message=f"into volume {name}: {result.get('Files')} files")
    return f"restored backup {rec.pk} into volume {name}: {result.get('Files')} files"


def _start_again(job: Job, host: Host, stopped: list[dict]) -> None:
    api = client.engine_client(host).api
    for c in stopped:
        try:
            with client.calling(host, f"starting container {c['name']}"):
                api.start(c["id"])
            job.append_log(f"started container {c['name']} again")
        except EngineError as e:
            job.append_log(f"could not start container {c['name']} again: {e.message}")


def _restore_into(job: Job, rec: BackupRecord, name: str, identity) -> dict:
    progress = _JobProgress(job, 0.05, 0.99, f"restoring into {name}")
    if rec.storage == "engine":
        return engine_api.restore_backup(rec.host, rec.engine_id, name, progress)
    # From dockweb's directory or S3: stream it (decrypted on the way) into the engine as a temporary backup of
    # the target, check the stored bytes' sha256, restore, and drop the temporary backup.
    store = store_for(rec.storage, rec.s3_target)
    temp_id = ""
    try:
        fetching = _JobProgress(job, 0.05, 0.5, "fetching")
        with store.open(rec.key) as raw:
            if identity is not None:
                stored = _Checked(raw, rec.size)
                with crypto.piped(lambda w: crypto.decrypt_stream(stored, w, identity)) as plain:
                    temp_id = engine_api.upload(rec.host, name, engine_api.chunks(_Checked(plain, rec.size, fetching)),
                                                compression=rec.compression)["Id"]
            else:
                stored = _Checked(raw, rec.size, fetching)
                temp_id = engine_api.upload(rec.host, name, engine_api.chunks(stored),
                                            compression=rec.compression)["Id"]
        if stored.digest != rec.stored_checksum:
            raise StorageError(f"the stored archive's sha256 {stored.digest[7:19]} differs from the one recorded "
                               f"at backup ({rec.stored_checksum[7:19]}): not restoring it")
        return engine_api.restore_backup(rec.host, temp_id, name, _JobProgress(job, 0.5, 0.99, f"restoring {name}"))
    finally:
        if temp_id:
            try:
                engine_api.delete_backup(rec.host, temp_id)
            except EngineError as e:
                log.warning("could not remove temporary engine backup %s: %s", temp_id, e.message)


# -- download and upload -----------------------------------------------------------------------------------------

def download(user, ref) -> tuple[BackupRecord, Iterator[bytes]]:
    """Return the backup and an iterator over its archive as stored (age-encrypted when the backup is)."""
    rec = get_backup(user, ref, "operate", audit="backup.download")

    def stream() -> Iterator[bytes]:
        if rec.storage == "engine":
            with engine_api.download(rec.host, rec.engine_id) as (raw, _headers):
                yield from engine_api.chunks(raw)
        else:
            with store_for(rec.storage, rec.s3_target).open(rec.key) as raw:
                yield from engine_api.chunks(raw)

    record("backup.download", actor=user, obj=rec)
    return rec, stream()


def upload_archive(user, volume_ref: str, chunks, strip: int = 0, host: Host | None = None) -> BackupRecord:
    """Store an uploaded archive (a plain tar such as the seed's backup.tar, or gzip/zstd/bzip2/xz) as a backup
    of the volume in the engine's store, ready to restore."""
    vol = volumes.get_volume(user, volume_ref, "operate", host)
    if strip < 0:
        raise ValidationError({"strip": ["zero or more"]})
    started = time.monotonic()
    try:
        doc = engine_api.upload(vol.host, vol.name, chunks, strip=strip)
    except EngineError as e:
        record("backup.upload", actor=user, obj=vol, result="failed", message=e.message)
        raise
    rec = BackupRecord.objects.create(
        team=vol.team, host=vol.host, volume=vol, volume_name=vol.name, origin="upload", storage="engine",
        engine_id=doc["Id"], compression=doc["Compression"], size=doc["Size"], data_bytes=doc["Bytes"],
        files=doc["Files"], checksum=doc["Checksums"]["Archive"], stored_checksum=doc["Checksums"]["Archive"],
        duration=time.monotonic() - started, verified_ok=bool(doc["Verified"].get("Ok")),
        verify_message=doc["Verified"].get("Message", ""), verified_at=timezone.now())
    record("backup.upload", actor=user, obj=rec, message=f"{rec.files} files")
    return rec


# -- overview and checks -----------------------------------------------------------------------------------------

def policy_status(policy: BackupPolicy, now=None) -> dict:
    """Last result, next run and whether it is overdue (no success within twice its interval)."""
    now = now or timezone.now()
    tz = schedule.zone(policy.team.timezone)
    fields = schedule.cron_fields(policy.preset, policy.cron)
    runs = schedule.next_runs(fields, tz, now, 1)
    last_job = Job.objects.filter(kind="backup.run", params__policy=policy.pk).order_by("-created", "-pk").first()
    since = policy.last_success or policy.created
    return {"policy": policy, "next_run": runs[0] if runs else None, "last_job": last_job,
            "last_backup": policy.backups.order_by("-created").first(),
            "overdue": policy.enabled and now - since > 2 * schedule.interval(fields, tz, since)}


def overview(user) -> dict:
    policies = list(list_policies(user))
    covered: set[tuple[int, str]] = set()
    for p in policies:
        if p.enabled:
            covered.update((v.host_id, v.name) for v in policy_volumes(p))
    uncovered = [v for v in volumes.list_volumes(user) if (v.host_id, v.name) not in covered]
    statuses = [dict(policy_status(p), can_operate=can(user, "operate", p)) for p in policies]
    return {"statuses": statuses, "uncovered": uncovered,
            "can_create": is_site_admin(user) or any(can(user, "operate", t) for t in visible(Team, user))}


def check_policies(now=None) -> list[int]:
    """Notify once for each enabled policy with no success within twice its interval; return their ids."""
    now = now or timezone.now()
    alerted = []
    for policy in BackupPolicy.objects.filter(enabled=True, overdue_notified__isnull=True).select_related("team",
                                                                                                          "host"):
        status = policy_status(policy, now)
        if not status["overdue"]:
            continue
        since = policy.last_success
        notifications.notify(policy.team, "backup policy overdue",
                             f"Backup policy {policy.name} ({policy.covers}) has not succeeded "
                             + (f"since {since:%Y-%m-%d %H:%M} UTC" if since else "yet")
                             + ", more than twice its interval.", policy=policy)
        BackupPolicy.objects.filter(pk=policy.pk).update(overdue_notified=now)
        alerted.append(policy.pk)
    return alerted
