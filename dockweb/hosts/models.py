"""A host: one engine API endpoint (unix socket or tcp), the Celery queue its jobs go to, and its health."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

DEFAULT_HOST = "local"


def default_engine_url() -> str:
    return settings.ENGINE_URL


class Host(models.Model):
    class Health(models.TextChoices):
        UNKNOWN = "unknown"
        UP = "up"
        DOWN = "down"

    name = models.SlugField(max_length=100, unique=True)
    engine_url = models.CharField(max_length=255, default=default_engine_url)
    # Jobs for this host's objects go to this queue; the worker running beside its engine consumes it.
    queue = models.CharField(max_length=100, unique=True, blank=True)
    health = models.CharField(max_length=10, choices=Health.choices, default=Health.UNKNOWN)
    health_message = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    engine_version = models.CharField(max_length=50, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    # Hosts belong to the site: every team member sees them, site admins manage them.
    is_site_wide = True

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.queue:
            self.queue = f"host.{self.name}"
        super().save(*args, **kwargs)

    @classmethod
    def default(cls) -> "Host":
        """Return the first host, creating "local" on the configured engine URL when there is none."""
        host = cls.objects.order_by("pk").first()
        if host is None:
            host, _ = cls.objects.get_or_create(name=DEFAULT_HOST, defaults={"engine_url": settings.ENGINE_URL})
        return host

    @classmethod
    def lookup(cls, qs, ref: str, host=None) -> "Host | None":
        found = qs.filter(name=ref).first()
        if found is None and ref.isdigit():
            found = qs.filter(pk=int(ref)).first()
        return found

    def mark(self, health: str, message: str = "", version: str | None = None) -> None:
        """Record the outcome of talking to this host's engine."""
        self.health = health
        self.health_message = message
        self.checked_at = timezone.now()
        fields = ["health", "health_message", "checked_at"]
        if version is not None:
            self.engine_version = version
            fields.append("engine_version")
        Host.objects.filter(pk=self.pk).update(**{f: getattr(self, f) for f in fields})

    def audit_ref(self) -> dict:
        return {"object_type": "host", "object_id": str(self.pk), "object_name": self.name, "host_name": self.name}
