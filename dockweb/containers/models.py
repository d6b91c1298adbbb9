"""A container as the engine last reported it, plus what only the control plane knows: its team."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.timesince import timesince


class Container(models.Model):
    class State(models.TextChoices):
        CREATED = "created"
        RUNNING = "running"
        PAUSED = "paused"
        RESTARTING = "restarting"
        REMOVING = "removing"
        EXITED = "exited"
        DEAD = "dead"

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="containers")
    engine_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    image = models.CharField(max_length=255, blank=True)      # as the user named it
    image_id = models.CharField(max_length=80, blank=True)
    command = models.TextField(blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.CREATED)
    exit_code = models.IntegerField(null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    ports = models.JSONField(default=list, blank=True)  # [{"private": 80, "public": 8080, "type": "tcp", "ip": ""}]
    created = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="containers")
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["host", "engine_id"], name="one_row_per_engine_container")]
        indexes = [models.Index(fields=["team", "state"]), models.Index(fields=["host", "name"]),
                   models.Index(fields=["state"]), models.Index(fields=["image"])]

    def __str__(self) -> str:
        return self.name

    @property
    def short_id(self) -> str:
        return self.engine_id[:12]

    @property
    def is_running(self) -> bool:
        return self.state in (self.State.RUNNING, self.State.RESTARTING, self.State.PAUSED)

    @property
    def status_text(self) -> str:
        """Say what docker ps says in its STATUS column, from the stored facts."""
        now = timezone.now()
        if self.state == self.State.RUNNING and self.started_at:
            return f"Up {timesince(self.started_at, now)}"
        if self.state == self.State.PAUSED and self.started_at:
            return f"Up {timesince(self.started_at, now)} (Paused)"
        if self.state == self.State.EXITED:
            ago = f" {timesince(self.finished_at, now)} ago" if self.finished_at else ""
            return f"Exited ({self.exit_code if self.exit_code is not None else '?'}){ago}"
        return self.state.capitalize()

    @classmethod
    def lookup(cls, qs, ref: str, host=None) -> "Container | None":
        """Find by full id, name, or an unambiguous id prefix (docker's rules), optionally on one host."""
        if host is not None:
            qs = qs.filter(host=host)
        ref = ref.lstrip("/")
        for q in ({"engine_id": ref}, {"name": ref}):
            found = list(qs.filter(**q)[:2])
            if len(found) == 1:
                return found[0]
        if len(ref) >= 3 and all(c in "0123456789abcdef" for c in ref):
            found = list(qs.filter(engine_id__startswith=ref)[:2])
            if len(found) == 1:
                return found[0]
        return None

    def audit_ref(self) -> dict:
        return {"object_type": "container", "object_id": self.engine_id, "object_name": self.name,
                "team_slug": self.team.slug if self.team_id else "", "host_name": self.host.name}
