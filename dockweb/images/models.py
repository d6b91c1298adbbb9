"""An image as the engine last reported it: id, tags, size, labels, and the team its dockweb.team label names."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

HEX = set("0123456789abcdef")


def normalize_tag(ref: str) -> str:
    """busybox -> busybox:latest; keep an explicit tag or digest."""
    last = ref.rsplit("/", 1)[-1]
    return ref if (":" in last or "@" in ref) else f"{ref}:latest"


class Image(models.Model):
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="images")
    engine_id = models.CharField(max_length=80)  # sha256:...
    tags = models.JSONField(default=list, blank=True)
    # " a:1 b:2 ": the tags padded with spaces, so an exact tag lookup is a portable `contains`.
    tags_text = models.TextField(blank=True)
    size = models.BigIntegerField(default=0)
    created = models.DateTimeField(null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="images")
    synced_at = models.DateTimeField(default=timezone.now)

    # Unlabelled images (busybox, pulled bases) are read-only for every team member: they run from them.
    shared_when_unassigned = True

    class Meta:
        ordering = ["tags_text", "engine_id"]
        constraints = [models.UniqueConstraint(fields=["host", "engine_id"], name="one_row_per_engine_image")]

    def __str__(self) -> str:
        return self.display_name

    @property
    def short_id(self) -> str:
        return self.engine_id.removeprefix("sha256:")[:12]

    @property
    def display_name(self) -> str:
        return self.tags[0] if self.tags else self.short_id

    @classmethod
    def lookup(cls, qs, ref: str, host=None) -> "Image | None":
        """Find by id (with or without sha256:), unambiguous id prefix, or tag (busybox = busybox:latest)."""
        if host is not None:
            qs = qs.filter(host=host)
        bare = ref.removeprefix("sha256:")
        candidates = [qs.filter(engine_id=f"sha256:{bare}"), qs.filter(tags_text__contains=f" {normalize_tag(ref)} ")]
        if len(bare) >= 4 and set(bare) <= HEX:
            candidates.append(qs.filter(engine_id__startswith=f"sha256:{bare}"))
        for q in candidates:
            found = list(q[:2])
            if len(found) == 1:
                return found[0]
        return None

    def audit_ref(self) -> dict:
        return {"object_type": "image", "object_id": self.engine_id, "object_name": self.display_name,
                "team_slug": self.team.slug if self.team_id else "", "host_name": self.host.name}
