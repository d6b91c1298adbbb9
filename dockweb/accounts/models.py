"""Teams, their members' roles, and personal API tokens (stored as a sha256 digest, shown once)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

# The engine label that carries an object's owning team: ownership survives a database loss.
TEAM_LABEL = "dockweb.team"


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    # Backup schedules run in the team's timezone (an IANA name); backup alerts also go to its webhook.
    timezone = models.CharField(max_length=64, default="UTC")
    webhook_url = models.URLField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def lookup(cls, qs, ref: str, host=None) -> "Team | None":
        """Find a team by slug (or primary key)."""
        team = qs.filter(slug=ref).first()
        if team is None and ref.isdigit():
            team = qs.filter(pk=int(ref)).first()
        return team

    def audit_ref(self) -> dict:
        return {"object_type": "team", "object_id": str(self.pk), "object_name": self.slug, "team_slug": self.slug}


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"          # manage the team and everything it owns
    OPERATOR = "operator", "Operator"  # lifecycle, exec, logs, builds, backups, restores
    VIEWER = "viewer", "Viewer"       # read-only, logs


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="one_membership_per_user_and_team")]
        ordering = ["team__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"


TOKEN_PREFIX = "dw_"


def token_digest(raw: str) -> str:
    """Return the stored form of a raw token."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the raw token, so a user can tell tokens apart; the rest is only hashed.
    prefix = models.CharField(max_length=12, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user, name: str, expires_in_days: int | None = None) -> tuple["ApiToken", str]:
        """Create a token for user; return it with the raw secret, which is never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        token = cls.objects.create(user=user, name=name, prefix=raw[:10], digest=token_digest(raw), expires=expires)
        return token, raw

    @property
    def is_usable(self) -> bool:
        if self.revoked is not None or not self.user.is_active:
            return False
        return self.expires is None or self.expires > timezone.now()

    def touch(self) -> None:
        """Record use, at most once a minute (a write per API call would serialise SQLite)."""
        now = timezone.now()
        if self.last_used is None or now - self.last_used > timedelta(minutes=1):
            ApiToken.objects.filter(pk=self.pk).update(last_used=now)
            self.last_used = now

    def audit_ref(self) -> dict:
        return {"object_type": "token", "object_id": str(self.pk), "object_name": self.name}
