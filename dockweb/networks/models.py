"""A network as the engine last reported it, the containers attached to it, and the team its label names."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

# Docker's predefined networks: they cannot be removed and belong to no team.
PREDEFINED = ("bridge", "host", "none")


class Network(models.Model):
    # Unassigned networks (the predefined bridge, host and none among them) are visible read-only to every
    # team member, so anyone may attach a container to them; changing them stays with site admins.
    shared_when_unassigned = True

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="networks")
    engine_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    driver = models.CharField(max_length=50, default="bridge")
    subnet = models.CharField(max_length=64, blank=True)
    gateway = models.CharField(max_length=64, blank=True)
    internal = models.BooleanField(default=False)
    labels = models.JSONField(default=dict, blank=True)
    # [{"id": engine id, "name": container name, "ipv4": "172.18.0.2/16", "mac": ...}]
    endpoints = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="networks")
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["host", "engine_id"], name="one_row_per_engine_network")]

    def __str__(self) -> str:
        return self.name

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @classmethod
    def lookup(cls, qs, ref: str, host=None) -> "Network | None":
        """Find by exact name, full id, or a unique id prefix (as the docker CLI does)."""
        if host is not None:
            qs = qs.filter(host=host)
        for query in ({"name": ref}, {"engine_id": ref}, {"engine_id__startswith": ref} if len(ref) >= 3 else None):
            if query is None:
                continue
            found = list(qs.filter(**query)[:2])
            if len(found) == 1:
                return found[0]
        return None

    def audit_ref(self) -> dict:
        return {"object_type": "network", "object_id": self.engine_id, "object_name": self.name,
                "team_slug": self.team.slug if self.team_id else "", "host_name": self.host.name}
