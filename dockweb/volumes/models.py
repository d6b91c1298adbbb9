"""A named volume as the engine last reported it, and the team its dockweb.team label names."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Volume(models.Model):
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="volumes")
    name = models.CharField(max_length=255)
    driver = models.CharField(max_length=50, default="local")
    mountpoint = models.CharField(max_length=500, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="volumes")
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["host", "name"], name="one_row_per_engine_volume")]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def lookup(cls, qs, ref: str, host=None) -> "Volume | None":
        if host is not None:
            qs = qs.filter(host=host)
        found = list(qs.filter(name=ref)[:2])
        return found[0] if len(found) == 1 else None

    def audit_ref(self) -> dict:
        return {"object_type": "volume", "object_id": self.name, "object_name": self.name,
                "team_slug": self.team.slug if self.team_id else "", "host_name": self.host.name}
