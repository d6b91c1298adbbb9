"""Terminal transcripts kept for admins (LIVE_KEEP_TRANSCRIPTS): who ran what in which container, and its output."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Transcript(models.Model):
    session = models.CharField(max_length=40, unique=True)
    kind = models.CharField(max_length=10)  # "exec" or "attach"
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    host_name = models.CharField(max_length=100, blank=True)
    container_name = models.CharField(max_length=255, blank=True)
    container_id = models.CharField(max_length=64, blank=True)
    command = models.TextField(blank=True)
    path = models.CharField(max_length=500)  # the terminal output, raw bytes as the browser received them
    size = models.BigIntegerField(default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    started = models.DateTimeField(default=timezone.now, db_index=True)
    ended = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started"]

    def __str__(self) -> str:
        return f"{self.kind} {self.command} in {self.container_name} by {self.user} at {self.started:%Y-%m-%d %H:%M}"

    def output_tail(self, limit: int = 64 * 1024) -> str:
        """Return the end of the output as text (escape sequences left in)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(max(0, f.seek(0, 2) - limit))
                return f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(transcript unreadable: {e.strerror})"
