"""Backup policies (what, when, how long, how), the backups they made, and S3 targets to keep them in."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class S3Target(models.Model):
    """An S3-compatible bucket a team keeps backups in; the secret key is stored encrypted (crypto.seal)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="s3_targets")
    name = models.CharField(max_length=100)
    endpoint_url = models.CharField(max_length=300, blank=True, help_text="empty for AWS itself")
    region = models.CharField(max_length=50, blank=True, default="us-east-1")
    bucket = models.CharField(max_length=63)
    prefix = models.CharField(max_length=200, blank=True)
    access_key = models.CharField(max_length=200)
    secret_key_sealed = models.TextField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="one_s3_target_name_per_team")]

    def __str__(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        return f"{self.name} (s3://{self.bucket}/{self.prefix})"

    @classmethod
    def lookup(cls, qs, ref: str, host=None) -> "S3Target | None":
        return qs.filter(pk=int(ref)).first() if str(ref).isdigit() else qs.filter(name=ref).first()

    def audit_ref(self) -> dict:
        return {"object_type": "s3target", "object_id": str(self.pk), "object_name": self.name,
                "team_slug": self.team.slug}


class BackupPolicy(models.Model):
    class Preset(models.TextChoices):
        HOURLY = "hourly", "Hourly (at minute 0)"
        DAILY = "daily", "Daily (03:00)"
        WEEKLY = "weekly", "Weekly (Sunday 03:00)"
        MONTHLY = "monthly", "Monthly (the 1st, 03:00)"
        CUSTOM = "custom", "Cron expression"

    class Storage(models.TextChoices):
        ENGINE = "engine", "The host's engine backup store"
        DOCKWEB = "dockweb", "dockweb's backup directory"
        S3 = "s3", "An S3-compatible bucket"

    class Encryption(models.TextChoices):
        NONE = "none", "None"
        PASSPHRASE = "passphrase", "Passphrase (age, scrypt)"
        AGE = "age", "age public key"

    class Consistency(models.TextChoices):
        PAUSE = "pause", "Pause the containers using it"
        STOP = "stop", "Stop the containers using it"
        NONE = "none", "Neither"

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="backup_policies")
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="backup_policies")
    name = models.CharField(max_length=100)
    # Exactly one of: one volume, or a label selector ("key" or "key=value") over the team's volumes on the host.
    volume = models.ForeignKey("volumes.Volume", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="backup_policies")
    volume_name = models.CharField(max_length=255, blank=True)  # kept when the row goes (volume re-synced)
    selector = models.CharField(max_length=255, blank=True)
    preset = models.CharField(max_length=10, choices=Preset.choices, default=Preset.DAILY)
    cron = models.CharField(max_length=100, blank=True, help_text="minute hour day-of-month month day-of-week")
    keep_last = models.PositiveIntegerField(default=7)
    keep_daily = models.PositiveIntegerField(default=7)
    keep_weekly = models.PositiveIntegerField(default=4)
    keep_monthly = models.PositiveIntegerField(default=6)
    compression = models.CharField(max_length=5, default="zstd",
                                   choices=[("zstd", "zstd"), ("gzip", "gzip"), ("none", "none")])
    consistency = models.CharField(max_length=5, choices=Consistency.choices, default=Consistency.PAUSE)
    # checksum: the engine reads the archive back and compares checksums; full: also every member against the
    # manifest (slower: it decompresses the archive once more).
    verify = models.CharField(max_length=10, default="checksum",
                              choices=[("checksum", "Read back and compare checksums"),
                                       ("full", "Also check every file against the manifest")])
    pre_command = models.TextField(blank=True)
    post_command = models.TextField(blank=True)
    command_container = models.CharField(max_length=255, blank=True)
    storage = models.CharField(max_length=10, choices=Storage.choices, default=Storage.ENGINE)
    s3_target = models.ForeignKey(S3Target, null=True, blank=True, on_delete=models.PROTECT, related_name="policies")
    encryption = models.CharField(max_length=10, choices=Encryption.choices, default=Encryption.NONE)
    # Archives are encrypted to this age recipient. With a passphrase, it is the public half of an identity that
    # is kept only wrapped by the passphrase (an age scrypt file): scheduled runs need no secret at all.
    age_recipient = models.CharField(max_length=200, blank=True)
    wrapped_identity = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)
    last_success = models.DateTimeField(null=True, blank=True)
    overdue_notified = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name_plural = "backup policies"
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="one_policy_name_per_team")]

    def __str__(self) -> str:
        return self.name

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def covers(self) -> str:
        return f"volume {self.volume_name}" if not self.selector else f"volumes labelled {self.selector}"

    @property
    def periodic_task_name(self) -> str:
        return f"dockweb: backup policy {self.pk}"

    @classmethod
    def lookup(cls, qs, ref: str, host=None) -> "BackupPolicy | None":
        if host is not None:
            qs = qs.filter(host=host)
        return qs.filter(pk=int(ref)).first() if str(ref).isdigit() else None

    def audit_ref(self) -> dict:
        return {"object_type": "backup_policy", "object_id": str(self.pk), "object_name": self.name,
                "team_slug": self.team.slug, "host_name": self.host.name}


class BackupRecord(models.Model):
    """One backup: where its archive is (engine store, dockweb directory or S3) and what it holds."""

    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="backups")
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="backups")
    volume = models.ForeignKey("volumes.Volume", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="backups")
    volume_name = models.CharField(max_length=255)
    policy = models.ForeignKey(BackupPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="backups")
    job = models.ForeignKey("core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    origin = models.CharField(max_length=10, default="backup")  # backup | upload
    storage = models.CharField(max_length=10, choices=BackupPolicy.Storage.choices, default="engine")
    s3_target = models.ForeignKey(S3Target, null=True, blank=True, on_delete=models.PROTECT, related_name="backups")
    engine_id = models.CharField(max_length=64, blank=True, db_index=True)  # the engine's backup id
    key = models.CharField(max_length=500, blank=True)  # object key in the dockweb directory or bucket
    created = models.DateTimeField(default=timezone.now, db_index=True)
    compression = models.CharField(max_length=5, default="zstd")
    size = models.BigIntegerField(default=0)          # bytes stored (the ciphertext when encrypted)
    data_bytes = models.BigIntegerField(default=0)    # bytes of file content in the volume
    files = models.IntegerField(default=0)
    duration = models.FloatField(default=0.0)
    checksum = models.CharField(max_length=80, blank=True)          # sha256 of the engine's archive
    stored_checksum = models.CharField(max_length=80, blank=True)   # sha256 of what is stored
    encryption = models.CharField(max_length=10, choices=BackupPolicy.Encryption.choices, default="none")
    wrapped_identity = models.TextField(blank=True)   # passphrase-wrapped age identity (travels with the backup)
    verified_ok = models.BooleanField(null=True)
    verify_message = models.TextField(blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"backup {self.pk} of {self.volume_name}"

    @property
    def display_name(self) -> str:
        return f"{self.pk} of volume {self.volume_name}"

    @property
    def encrypted(self) -> bool:
        return self.encryption != "none"

    @property
    def filename(self) -> str:
        ext = {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}.get(self.compression, ".tar")
        return f"{self.volume_name}-{self.created:%Y%m%dT%H%M%SZ}{ext}" + (".age" if self.encrypted else "")

    @classmethod
    def lookup(cls, qs, ref: str, host=None) -> "BackupRecord | None":
        if host is not None:
            qs = qs.filter(host=host)
        return qs.filter(pk=int(ref)).first() if str(ref).isdigit() else None

    def audit_ref(self) -> dict:
        return {"object_type": "backup", "object_id": str(self.pk), "object_name": self.volume_name,
                "team_slug": self.team.slug if self.team_id else "", "host_name": self.host.name}
