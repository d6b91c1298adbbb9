"""Jobs (one row per long action, with progress and log) and the append-only audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

# A job's log keeps its last LOG_LIMIT characters: a runaway build must not grow a row without bound.
LOG_LIMIT = 256 * 1024


class Job(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=40)  # "image.pull", "containers.bulk", ...
    host = models.ForeignKey("hosts.Host", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="jobs")
    target = models.CharField(max_length=255, blank=True)  # what it acts on, for lists
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)  # 0..1
    message = models.CharField(max_length=300, blank=True)  # the current step
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    # Its creator sees a job even when no team owns it.
    viewable_by_creator = True

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"job {self.pk} {self.kind} {self.target} ({self.state})"

    @property
    def display_name(self) -> str:
        return f"{self.pk} ({self.kind} {self.target})"

    @property
    def done(self) -> bool:
        return self.state in (self.State.SUCCEEDED, self.State.FAILED)

    @property
    def duration(self):
        if self.started is None:
            return None
        return (self.finished or timezone.now()) - self.started

    def mark_running(self, task_id: str = "") -> None:
        self.state = self.State.RUNNING
        self.started = timezone.now()
        self.celery_task_id = task_id or self.celery_task_id
        self.save(update_fields=["state", "started", "celery_task_id"])
        self._notify()

    def mark_succeeded(self, message: str = "") -> None:
        self.state = self.State.SUCCEEDED
        self.progress = 1.0
        self.message = message[:300] or self.message
        self.finished = timezone.now()
        self.save(update_fields=["state", "progress", "message", "finished"])
        self._notify()

    def mark_failed(self, error: str) -> None:
        self.state = self.State.FAILED
        self.error = error
        self.finished = timezone.now()
        self.save(update_fields=["state", "error", "finished"])
        self._notify()

    def set_progress(self, fraction: float, message: str = "") -> None:
        """Record how far the job is (0..1) and its current step."""
        self.progress = min(max(float(fraction), 0.0), 1.0)
        if message:
            self.message = message[:300]
        self.save(update_fields=["progress", "message"])
        self._notify()

    def append_log(self, text: str) -> None:
        """Add text (a line or more) to the job's log, keeping its last LOG_LIMIT characters."""
        if not text.endswith("\n"):
            text += "\n"
        self.log = (self.log + text)[-LOG_LIMIT:]
        self.save(update_fields=["log"])

    def _notify(self) -> None:
        from dockweb.core.events import publish_job  # progress goes out through core/events.py

        publish_job(self)

    def audit_ref(self) -> dict:
        return {"object_type": "job", "object_id": str(self.pk), "object_name": self.kind,
                "team_slug": self.team.slug if self.team_id else "",
                "host_name": self.host.name if self.host_id else ""}

    def to_dict(self) -> dict:
        return {"id": self.pk, "kind": self.kind, "target": self.target, "state": self.state,
                "progress": self.progress, "message": self.message, "error": self.error}


class AuditLogIsAppendOnly(Exception):
    """Raised on any attempt to change or delete an audit entry."""

    def __init__(self, what: str) -> None:
        super().__init__(f"The audit log is append-only: {what} is refused")


class AuditQuerySet(models.QuerySet):
    # QuerySet.update and .delete bypass Model.save/delete: refuse them here too (bulk_update calls update).
    def update(self, **kwargs):
        raise AuditLogIsAppendOnly("updating audit entries")

    def delete(self):
        raise AuditLogIsAppendOnly("deleting audit entries")


class AuditEntry(models.Model):
    class Result(models.TextChoices):
        OK = "ok"
        FAILED = "failed"   # tried and the engine (or a check) said no
        DENIED = "denied"   # the actor's role did not allow it; failed logins

    time = models.DateTimeField(default=timezone.now, db_index=True)
    # No database constraint and DO_NOTHING: deleting a user must neither fail nor rewrite history.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING,
                              db_constraint=False, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    team_slug = models.CharField(max_length=50, blank=True, db_index=True)
    action = models.CharField(max_length=60, db_index=True)  # "container.stop", "auth.login_failed", ...
    object_type = models.CharField(max_length=30, blank=True)
    object_id = models.CharField(max_length=100, blank=True)
    object_name = models.CharField(max_length=255, blank=True)
    host_name = models.CharField(max_length=100, blank=True)
    result = models.CharField(max_length=10, choices=Result.choices, default=Result.OK, db_index=True)
    message = models.TextField(blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action} {self.object_name} {self.result}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly(f"changing audit entry {self.pk}")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditLogIsAppendOnly(f"deleting audit entry {self.pk}")
